// Streamlit folds the sidebar when presenter view starts (set_page_config), but leaves it open
// once a person opened it to change pages. This fixed script (no user text in it) folds it again
// whenever the page's address changes while presenter view is on (its stylesheet, the element
// with id gpt2viz-presenter, is on the page). Streamlit runs it once, when first drawn; it then
// watches the address for the rest of the browser session.
if (!window.gpt2vizFold) {
  window.gpt2vizFold = true;
  let last = location.pathname, tries = 0;
  setInterval(() => {
    if (location.pathname !== last) [last, tries] = [location.pathname, 20];  // for 5 s
    if (tries <= 0) return;
    tries -= 1;
    if (!document.getElementById("gpt2viz-presenter")) return;  // not yet drawn, or switched off
    tries = 0;
    if (document.querySelector('[data-testid="stSidebar"][data-collapsed="false"]'))
      document.querySelector('[data-testid="stSidebarCollapseButton"] button')?.click();
  }, 250);
}
