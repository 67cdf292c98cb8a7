// The API page: a Copy button for the new key, and a confirmation before revoking a key.
// Without JavaScript or a clipboard the button stays hidden and the key can still be selected.
(function () {
  "use strict";

  function selectText(element) {
    var range = document.createRange();
    range.selectNodeContents(element);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  function setUpCopy(button) {
    var target = document.getElementById(button.dataset.copyTarget);
    var status = document.getElementById(button.dataset.copyStatus);
    if (!target || !navigator.clipboard || !navigator.clipboard.writeText) {
      return;
    }
    function say(text) {
      if (status) {
        status.textContent = text;
      }
    }
    button.hidden = false;
    button.addEventListener("click", function () {
      navigator.clipboard.writeText(target.textContent.trim()).then(function () {
        button.textContent = "Copied";
        say("The key is in your clipboard.");
      }, function () {
        selectText(target);
        say("Copying was refused: the key is selected, press Ctrl+C (⌘C) to copy it.");
      });
    });
  }

  function setUpConfirm(form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.dataset.confirm)) {
        event.preventDefault();
      }
    });
  }

  document.querySelectorAll("[data-copy-target]").forEach(setUpCopy);
  document.querySelectorAll("form[data-confirm]").forEach(setUpConfirm);
})();
