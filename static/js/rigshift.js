// Small behaviours without inline scripts (the Content-Security-Policy allows scripts from 'self' only):
//   <form data-confirm="Question?">  asks before submitting;
//   <button data-print>              prints the page.
document.addEventListener("submit", function (event) {
  var form = event.target;
  if (form instanceof HTMLFormElement && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
    event.preventDefault();
  }
}, true);
document.addEventListener("click", function (event) {
  var target = event.target instanceof Element ? event.target.closest("[data-print]") : null;
  if (target) {
    event.preventDefault();
    window.print();
  }
});
//   <select data-region-map='{"DE":"eu",…}' data-region-target="id_region">  sets the region when the country changes.
document.addEventListener("change", function (event) {
  var select = event.target;
  if (!(select instanceof HTMLSelectElement) || !select.dataset.regionMap) {
    return;
  }
  var target = document.getElementById(select.dataset.regionTarget || "");
  var region = JSON.parse(select.dataset.regionMap)[select.value];
  if (target instanceof HTMLSelectElement && region) {
    target.value = region;
  }
});

// Copy buttons: <button data-copy="#element-id">Copy</button> copies that element's text.
document.addEventListener("click", (event) => {
  const button = event.target instanceof Element ? event.target.closest("[data-copy]") : null;
  if (!button) return;
  const source = document.querySelector(button.dataset.copy);
  if (!source) return;
  const text = source.textContent.trim();
  const done = () => { button.textContent = "Copied"; setTimeout(() => { button.textContent = "Copy"; }, 1500); };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(done, () => {});
  } else {
    const area = document.createElement("textarea");
    area.value = text;
    document.body.appendChild(area);
    area.select();
    document.execCommand("copy");
    area.remove();
    done();
  }
});
