"""The task engine: typed values (`model`), the store of every statement on tasks and events (`store`), one create path (`submit`), execution (`dispatcher`, `unreachable`)."""
