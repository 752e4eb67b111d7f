//! The remote-worker protocol: the job message a worker takes from Redis,
//! the reports it POSTs back, and its heartbeat.
