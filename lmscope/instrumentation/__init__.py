"""One subpackage per instrumented library; each imports its library only when the app does."""
