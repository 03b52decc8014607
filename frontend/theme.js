// The colour theme: the system's (light or dark, as the browser prefers) unless the user chose
// one, which this browser remembers. The page's colours follow `color-scheme`, which
// style.css sets from the `data-theme` attribute of the document.
const KEY = "fuselab-theme";
const THEMES = ["system", "light", "dark"];

function saved() {
  try {
    const theme = localStorage.getItem(KEY);
    return THEMES.includes(theme) ? theme : "system";
  } catch {
    // Storage can be off (private modes, policies): the system's theme, then.
    return "system";
  }
}

function apply(theme) {
  if (theme === "system") delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = theme;
}

/** Applies the theme this browser remembers. */
export function applySavedTheme() {
  apply(saved());
}

/** The theme in use: `system`, `light` or `dark`. */
export function currentTheme() {
  return saved();
}

/** Uses and remembers `theme`. */
export function chooseTheme(theme) {
  const chosen = THEMES.includes(theme) ? theme : "system";
  try {
    if (chosen === "system") localStorage.removeItem(KEY);
    else localStorage.setItem(KEY, chosen);
  } catch {
    // Not remembered; still used on this page.
  }
  apply(chosen);
}
