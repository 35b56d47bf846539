// Tablets and phones (app/layout.py). A fixed script (no user text in it), run once per browser tab
// (Streamlit runs it when first drawn; it then watches the page for the rest of the tab's life):
// - below $FOLD_BELOW px the sidebar starts folded, and folds again when another page opens, as
//   Streamlit does by itself only below 768 px;
// - every figure is laid out for the width it gets: `fitted` (gpt2viz/viz/export.py) put its layouts
//   for narrower widths in layout.meta.narrow ({wide, below: [[px, update], ...]}); after each
//   drawing the one for the figure's width is applied, when it is not already.
if (!window.gpt2vizScreens) {
  window.gpt2vizScreens = true;
  const FOLD_BELOW = $FOLD_BELOW;
  let last = null;
  setInterval(() => {  // once the sidebar is drawn, on the first page and on each page opened after it
    const bar = document.querySelector('[data-testid="stSidebar"]');
    if (!bar || location.pathname === last) return;
    last = location.pathname;
    if (window.innerWidth < FOLD_BELOW && bar.getAttribute("data-collapsed") === "false")
      document.querySelector('[data-testid="stSidebarCollapseButton"] button')?.click();
  }, 250);

  const get = (gd, key) => key.split(/[.[\]]+/).filter(Boolean)  // "annotations[2].text"
    .reduce((at, part) => (at == null ? null : at[part]), gd.layout);
  const same = (a, b) => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
  const fit = gd => {
    const narrow = gd.layout?.meta?.narrow, width = gd._fullLayout?.width;
    if (!narrow || !width || !window.Plotly) return;
    let want = narrow.wide;
    for (const [below, update] of narrow.below) if (width < below) want = {...narrow.wide, ...update};
    const changes = Object.fromEntries(Object.entries(want).filter(([key, value]) => !same(get(gd, key), value)));
    if (!Object.keys(changes).length) return void (gd.gpt2vizTries = 0);
    // At most a few tries for one width and layout: a page that sets a value back is not fought.
    const attempt = width + JSON.stringify(changes);
    gd.gpt2vizTries = gd.gpt2vizAttempt === attempt ? gd.gpt2vizTries + 1 : 1;
    gd.gpt2vizAttempt = attempt;
    if (gd.gpt2vizTries <= 3) window.Plotly.relayout(gd, changes);
  };
  const hook = gd => {
    if (gd.gpt2vizFitted || typeof gd.on !== "function") return;
    gd.gpt2vizFitted = true;
    gd.on("plotly_afterplot", () => requestAnimationFrame(() => fit(gd)));
    fit(gd);
  };
  let queued = false;
  new MutationObserver(() => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => {
      queued = false;
      document.querySelectorAll(".js-plotly-plot").forEach(hook);
    });
  }).observe(document.body, {childList: true, subtree: true});
}
