// Task filter of the index: shows one task's columns and pair rows. Without JavaScript the
// control stays hidden and every row and column shows.
(function () {
  "use strict";
  var block = document.getElementById("task-filter-block");
  var select = document.getElementById("task-filter");
  if (!block || !select) return;
  block.hidden = false;
  select.addEventListener("change", function () {
    var chosen = select.value;
    document.querySelectorAll("[data-task]").forEach(function (element) {
      element.hidden = chosen !== "" && element.getAttribute("data-task") !== chosen;
    });
  });
})();
