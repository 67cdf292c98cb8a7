// The new-ticket form shows only the fields of the chosen subject (Order: request and order
// ids; Payment: method and transaction id). Without this script every field shows, and the
// server ignores the ones the subject does not use.
(function () {
  "use strict";

  function setUp(form) {
    var subject = form.querySelector("select[name=subject]");
    var groups = form.querySelectorAll("[data-subject]");

    function show() {
      groups.forEach(function (group) {
        group.hidden = group.getAttribute("data-subject") !== subject.value;
      });
    }

    subject.addEventListener("change", show);
    show();
  }

  document.querySelectorAll("[data-ticket-form]").forEach(setUp);
})();
