"""Front doors: the `gallery` command line and (later) the HTTP service. Thin: parse, call, print."""
