// The index's filters and sort, kept in the URL so that a link reproduces the view:
// index.html?sort=<column>&dir=asc|desc&task=<task id>&modality=..&family=..&kind=..&test=no
// (<column> is the column's name in the downloadable table). Without JavaScript the controls
// stay hidden and every row, column and the all-task chart show, in the server's order.
(function () {
  "use strict";
  var form = document.getElementById("task-filter-block");
  if (!form) return;
  var $ = function (id) { return document.getElementById(id); };
  var task = $("task-filter"), modality = $("modality-filter"), family = $("family-filter");
  var kind = $("kind-filter"), test = $("test-filter"), state = $("filter-state");
  var sort = null; // {key, dir} from the URL or the reader's last click
  form.hidden = false;

  function pick(select, value) {
    var found = Array.prototype.some.call(select.options, function (o) { return o.value === value; });
    select.value = found ? value : "";
  }

  function read() {
    var q = new URLSearchParams(window.location.search);
    pick(task, q.get("task") || "");
    pick(modality, q.get("modality") || "");
    pick(family, q.get("family") || "");
    pick(kind, q.get("kind") || "");
    test.checked = q.get("test") !== "no";
    var dir = q.get("dir") === "asc" ? "asc" : "desc";
    sort = q.get("sort") ? { key: q.get("sort"), dir: dir } : null;
  }

  function write() {
    var q = new URLSearchParams();
    if (sort) { q.set("sort", sort.key); q.set("dir", sort.dir); }
    if (task.value) q.set("task", task.value);
    if (modality.value) q.set("modality", modality.value);
    if (family.value) q.set("family", family.value);
    if (kind.value) q.set("kind", kind.value);
    if (!test.checked) q.set("test", "no");
    var text = q.toString();
    window.history.replaceState(null, "", window.location.pathname + (text ? "?" + text : ""));
  }

  function tasksShown() {
    // The tasks the task and modality filters leave: null for every task.
    if (task.value) return [task.value];
    if (!modality.value) return null;
    return Array.prototype.filter.call(task.options, function (o) {
      return o.value && o.getAttribute("data-modality") === modality.value;
    }).map(function (o) { return o.value; });
  }

  function primary(section) {
    // The table the sort applies to: the ranking, or the per-task table for one task (ids join
    // the suite and the table with "~", `medbench.publish.site.layout.SEPARATOR`).
    var id = task.value ? "~per-task" : "~ranking";
    return section.querySelector('table[id$="' + id + '"]');
  }

  function applySort() {
    if (!sort) return;
    document.querySelectorAll("section").forEach(function (section) {
      var table = primary(section);
      if (!table) return;
      var headers = Array.prototype.slice.call(table.tHead.rows[0].cells);
      var names = [sort.key, sort.key + "." + task.value];
      var index = headers.findIndex(function (h) { return names.indexOf(h.getAttribute("data-key")) >= 0; });
      if (index >= 0) window.medbenchSort(table, index, sort.dir === "asc" ? "ascending" : "descending");
    });
  }

  function apply() {
    var shown = tasksShown();
    document.querySelectorAll("[data-task]").forEach(function (element) {
      element.hidden = shown !== null && shown.indexOf(element.getAttribute("data-task")) < 0;
    });
    // One task chosen: its chart and its ranking replace the all-task ones.
    document.querySelectorAll("[data-task-view]").forEach(function (element) {
      element.hidden = element.getAttribute("data-task-view") !== task.value;
    });
    document.querySelectorAll('[data-view="all"]').forEach(function (element) {
      element.hidden = task.value !== "";
    });
    document.querySelectorAll('table[id$="~ranking"]').forEach(function (table) {
      table.closest(".table-block").hidden = task.value !== "";
    });
    var rows = 0, hidden = 0;
    document.querySelectorAll("tr[data-kind]").forEach(function (row) {
      var out = (family.value && row.getAttribute("data-family") !== family.value) ||
        (kind.value && row.getAttribute("data-kind") !== kind.value) ||
        (!test.checked && row.getAttribute("data-test") === "yes");
      row.hidden = Boolean(out);
      rows += 1;
      if (out) hidden += 1;
    });
    applySort();
    state.textContent = task.value
      ? "Showing the ranking of one task: " + task.options[task.selectedIndex].text + "." : "";
    if (hidden) state.textContent += " " + hidden + " of " + rows + " model rows filtered out.";
    write();
  }

  [task, modality, family, kind, test].forEach(function (control) {
    control.addEventListener("change", apply);
  });
  document.addEventListener("medbench:sort", function (event) {
    var table = event.target;
    var section = table.closest("section");
    if (!section || primary(section) !== table) return;
    var key = event.detail.key.replace(/\.[^.]*$/, function (suffix) {
      return task.value && suffix === "." + task.value ? "" : suffix;
    });
    sort = { key: key, dir: event.detail.order === "ascending" ? "asc" : "desc" };
    write();
  });
  read();
  apply();
})();
