//! The `/ws` protocol: server frames, client operations and event names.
