// The desk's pages. The order page asks for its status every few seconds while the order is
// live (htmx, templates/desk/order.html). When the status it gets back differs from the one
// the page was drawn with, the whole page is stale — history, money, the actions that
// apply — so load it again.
(function () {
  "use strict";

  // Folded parts (the orders list's filters) stay open on wide screens, where they fit.
  if (window.matchMedia("(min-width: 60rem)").matches) {
    document.querySelectorAll("details[data-open-wide]").forEach(function (box) {
      box.open = true;
    });
  }

  var region = document.getElementById("order-status");
  if (!region) {
    return;
  }
  var drawnWith = region.getAttribute("data-status");
  document.body.addEventListener("htmx:afterSettle", function () {
    var now = document.getElementById("order-status");
    if (now && now.getAttribute("data-status") !== drawnWith) {
      window.location.reload();
    }
  });
})();
