// The Align page's glue: one EventSource on a run's events.

/**
 * Follows run `id`: `onEvent(kind, data)` gets the server's `status`, `metrics`, `done` and
 * `error` events, and `lost` (no data) when the connection drops; the browser then reconnects
 * by itself, sending the last metrics id so that nothing is repeated. Returns a function that
 * stops following.
 */
export function followAlignRun(id, onEvent) {
  const source = new EventSource(`/api/align/runs/${id}/events`);
  for (const kind of ["status", "metrics"]) {
    source.addEventListener(kind, (event) => onEvent(kind, event.data));
  }
  source.addEventListener("done", (event) => {
    source.close();
    onEvent("done", event.data);
  });
  source.addEventListener("error", (event) => {
    // The server's `error` event carries the run; the browser's own (a lost connection) has no
    // data.
    if (typeof event.data === "string") {
      source.close();
      onEvent("error", event.data);
    } else if (source.readyState !== EventSource.CLOSED) {
      onEvent("lost", "");
    }
  });
  return () => source.close();
}
