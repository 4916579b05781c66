// Let htmx swap 422 answers: they carry the date block with its inline errors (see the htmx docs,
// "Configuring Response Handling"). Every other error status keeps htmx's default (no swap).
document.addEventListener("htmx:beforeSwap", function (event) {
  if (event.detail.xhr.status === 422) {
    event.detail.shouldSwap = true;
    event.detail.isError = false;
  }
});
