// The New order page: the service search is a combobox. The arrow keys move through the
// options htmx puts in the listbox, Enter picks one (its link loads the page with that
// service), Escape closes the list. Without JavaScript the search is a plain GET form and
// the options are plain links.
(function () {
  "use strict";

  var input = document.getElementById("service-search");
  var results = document.getElementById("service-results");
  if (!input || !results) {
    return;
  }
  var active = -1;

  function listbox() {
    return document.getElementById("service-options");
  }

  function options() {
    var list = listbox();
    return list ? Array.prototype.slice.call(list.querySelectorAll("[role=option]")) : [];
  }

  function setExpanded() {
    var list = listbox();
    var open = !!list && !list.hidden && options().length > 0;
    input.setAttribute("aria-expanded", open ? "true" : "false");
  }

  function highlight(index) {
    var all = options();
    active = all.length ? Math.max(0, Math.min(index, all.length - 1)) : -1;
    all.forEach(function (option, i) {
      var on = i === active;
      option.setAttribute("aria-selected", on ? "true" : "false");
      option.classList.toggle("active", on);
      if (on) {
        input.setAttribute("aria-activedescendant", option.id);
        option.scrollIntoView({block: "nearest"});
      }
    });
    if (active < 0) {
      input.removeAttribute("aria-activedescendant");
    }
  }

  function pick(option) {
    var link = option && option.querySelector("a[href]");
    if (link) {
      window.location.assign(link.href);
    }
  }

  input.addEventListener("keydown", function (event) {
    var list = listbox();
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      if (!options().length) {
        return;
      }
      event.preventDefault();
      if (list) {
        list.hidden = false;
      }
      setExpanded();
      highlight(event.key === "ArrowDown" ? active + 1 : active - 1);
    } else if (event.key === "Enter" && active >= 0) {
      event.preventDefault();
      pick(options()[active]);
    } else if (event.key === "Escape" && list) {
      list.hidden = true;
      highlight(-1);
      setExpanded();
    }
  });

  results.addEventListener("click", function (event) {
    var option = event.target.closest("[role=option]");
    if (option && !event.target.closest("a")) {
      pick(option);
    }
  });

  document.body.addEventListener("htmx:afterSwap", function (event) {
    if (event.target === results) {
      active = -1;
      input.removeAttribute("aria-activedescendant");
      setExpanded();
    }
  });
  setExpanded();
})();
