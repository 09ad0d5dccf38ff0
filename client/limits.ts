/**
 * The client's own limits and defaults, each with its reason. Owner: whoever runs the client (any thread with an
 * event loop). The server's limits arrive in HelloResponse.limits and, where they are smaller, win.
 * Invariants: every queue the client keeps has a maximum here; none grows with what the server or the caller
 * sends beyond it.
 */

export const protocolVersionMin = 1;
export const protocolVersionMax = 1;

/** The largest frame accepted from the server: the server's own frame_bytes_max may be configured up to 1 GiB. */
export const frameBytesReceivedMaxDefault = 1024 * 1024 * 1024;
/** Requests on the wire at once when the server states no limit (the server's default is also 1024). */
export const requestsInFlightMaxDefault = 1024;
/** Requests waiting for a connection or an in-flight slot; more fail at once with RESOURCE_EXHAUSTED. */
export const requestsWaitingMax = 65_536;
/** A request that gets no answer in this time fails with DEADLINE_EXCEEDED. */
export const requestTimeoutMsDefault = 30_000;
/** Opening the socket and the Hello exchange together. */
export const connectTimeoutMsDefault = 10_000;
/** A WebSocket ping this often (ws only); no traffic for two intervals means a dead connection. 0: off. */
export const keepaliveMsDefault = 30_000;

export const reconnectInitialMsDefault = 100;
export const reconnectMaxMsDefault = 10_000;
export const reconnectFactorDefault = 2;
export const reconnectJitterDefault = 0.2;

/** Messages one watch queues for a consumer that does not pull; past it the watch pauses (see client/watch.ts). */
export const watchQueueMessagesMaxDefault = 4096;
/** Bytes (of the frames the messages came in) one watch queues; same rule. */
export const watchQueueBytesMaxDefault = 64 * 1024 * 1024;
/** One revision's fragments together: a RevisionChanges is bounded by one transaction (64 MiB) plus its configs. */
export const fragmentBytesMax = 512 * 1024 * 1024;
/** Subscriptions per client when the server states none (the server's default is 64). */
export const subscriptionsMaxDefault = 64;
