// Sortable tables: each header becomes a button that sorts the rows (click, Enter or Space)
// and sets aria-sort. Without JavaScript the tables keep their server-side order.
// window.medbenchSort(table, index, order) sorts from elsewhere (the index's URL state); a
// sort by the reader fires a "medbench:sort" event on the table (detail: key and order).
(function () {
  "use strict";

  function key(cell, numeric) {
    var raw = cell.getAttribute("data-sort");
    if (raw === null) raw = cell.textContent.trim();
    if (!numeric) return raw.toLowerCase();
    return raw === "" ? null : parseFloat(raw);
  }

  function sortBy(table, index, order) {
    var header = table.tHead.rows[0].cells[index];
    var numeric = header.getAttribute("data-type") === "number";
    var sign = order === "ascending" ? 1 : -1;
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows).map(function (row, position) {
      return { row: row, key: key(row.cells[index], numeric), position: position };
    });
    rows.sort(function (a, b) {
      if (a.key === null || b.key === null) {
        if (a.key === b.key) return a.position - b.position;
        return a.key === null ? 1 : -1; // missing values last in either order
      }
      if (a.key < b.key) return -sign;
      if (a.key > b.key) return sign;
      return a.position - b.position;
    });
    rows.forEach(function (item) { body.appendChild(item.row); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) {
      th.removeAttribute("aria-sort");
    });
    header.setAttribute("aria-sort", order);
  }

  function enhance(table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (header, index) {
      var button = document.createElement("button");
      button.type = "button";
      // The label goes into the button; the link to the column's definition stays beside it.
      var label = header.querySelector(".h") || header;
      while (label.firstChild) button.appendChild(label.firstChild);
      if (label === header) header.appendChild(button);
      else header.replaceChild(button, label);
      button.addEventListener("click", function () {
        var order = header.getAttribute("aria-sort") === "ascending" ? "descending" : "ascending";
        sortBy(table, index, order);
        table.dispatchEvent(new CustomEvent("medbench:sort", {
          bubbles: true,
          detail: { key: header.getAttribute("data-key"), order: order }
        }));
      });
    });
  }

  window.medbenchSort = sortBy;
  document.querySelectorAll("table.sortable").forEach(enhance);
})();
