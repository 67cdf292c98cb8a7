// The top bar's menu is a <details>: it opens and closes by tap, click, Enter and Space with
// no script. This adds what a menu button is expected to do besides: Escape closes it and
// gives focus back to the button, a tap outside closes it, and on wide screens (where the
// CSS shows every entry) it stays open for browsers without ::details-content.
(function () {
  "use strict";

  var wide = window.matchMedia("(min-width: 60rem)");

  function setUp(menu) {
    var toggle = menu.querySelector("summary");

    function fitWidth() {
      menu.open = wide.matches;
    }

    document.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && menu.open && !wide.matches) {
        menu.open = false;
        toggle.focus();
      }
    });
    document.addEventListener("click", function (event) {
      if (menu.open && !wide.matches && !menu.contains(event.target)) {
        menu.open = false;
      }
    });
    if (wide.addEventListener) {
      wide.addEventListener("change", fitWidth);
    }
    fitWidth();
  }

  document.querySelectorAll("[data-nav-menu]").forEach(setUp);
})();
