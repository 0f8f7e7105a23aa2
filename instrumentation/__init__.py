"""One subpackage per instrumented library; each imports its library only inside `_instrument`."""
