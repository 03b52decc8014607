// Starts the app: instantiates the wasm module, whose start function mounts the page. A file
// rather than an inline script, so the server's Content-Security-Policy can allow only 'self'.
import init from "/pkg/fuselab_frontend.js";
import { applySavedTheme } from "/theme.js";

// Before the app draws, so a chosen theme never flashes the other one.
applySavedTheme();

init().catch((error) => {
  document.body.textContent = "fuselab could not start: " + error;
  console.error(error);
});
