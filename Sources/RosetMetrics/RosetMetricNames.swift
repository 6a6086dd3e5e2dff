// The names of the metrics roset-fuse exports, with their HELP text. Invariants: every metric a
// target of this package records is named here (the exposition adds each one's HELP line from
// this table); names follow Prometheus' conventions (snake_case, `_total` for counters, base
// units: seconds and bytes). Recording goes through swift-metrics, so a process that never
// bootstraps a metrics backend (metrics= not given) records into no-op handlers.
public enum RosetMetricNames {
    // FUSE requests (mount.roset), by operation.
    public static let fuseRequests = "roset_fuse_requests_total"
    public static let fuseErrors = "roset_fuse_errors_total"
    public static let fuseDuration = "roset_fuse_request_duration_seconds"
    // HTTP calls to the control plane and the object store, by call ("GET /v1/nodes/{id}", "GET <signed url>").
    public static let requests = "roset_requests_total"
    public static let requestDuration = "roset_request_duration_seconds"
    public static let requestRetries = "roset_request_retries_total"
    public static let storeReadBytes = "roset_store_read_bytes_total"
    public static let storeWrittenBytes = "roset_store_written_bytes_total"
    // Caches.
    public static let blockCacheHits = "roset_block_cache_hits_total"
    public static let blockCacheMisses = "roset_block_cache_misses_total"
    public static let metadataCacheHits = "roset_metadata_cache_hits_total"
    public static let metadataCacheMisses = "roset_metadata_cache_misses_total"
    public static let openRevalidations = "roset_open_revalidations_total"
    // Spool and uploads.
    public static let spoolPendingFiles = "roset_spool_pending_files"
    public static let spoolPendingBytes = "roset_spool_pending_bytes"
    public static let spoolOldestPendingAge = "roset_spool_oldest_pending_age_seconds"
    public static let uploadsConfirmed = "roset_uploads_confirmed_total"
    public static let uploadFailures = "roset_upload_failures_total"
    public static let deadLetters = "roset_dead_letters_total"
    public static let concurrentWrites = "roset_concurrent_writes_total"
    // roset-server (Hummingbird's MetricsMiddleware, renamed by `exported`).
    public static let serverRequests = "roset_server_requests_total"
    public static let serverRequestDuration = "roset_server_request_duration_seconds"
    public static let serverRequestErrors = "roset_server_request_errors_total"
    public static let serverActiveRequests = "roset_server_active_requests"

    /// The names others' metrics are exported under: Hummingbird's counters lack the `_total`
    /// suffix (promtool refuses that) and its names carry dots.
    public static let exported: [String: String] = [
        "hb.requests": serverRequests,
        "http.server.request.duration": serverRequestDuration,
        "hb.request.errors": serverRequestErrors,
        "http.server.active_requests": serverActiveRequests,
    ]

    /// HELP text by metric family name.
    public static let help: [String: String] = [
        fuseRequests: "FUSE requests answered by this mount, by operation.",
        fuseErrors: "FUSE requests answered with an error, by operation.",
        fuseDuration: "Time to answer a FUSE request, by operation.",
        requests: "HTTP requests to the control plane and the object store (each attempt), by call and HTTP status (network: no answer).",
        requestDuration: "Time of one HTTP request attempt to the control plane or the object store, by call.",
        requestRetries: "HTTP request attempts that were retried, by call.",
        storeReadBytes: "Bytes read from the object store.",
        storeWrittenBytes: "Bytes written to the object store (upload parts and single PUTs).",
        blockCacheHits: "Reads served from the daemon's block cache without a request.",
        blockCacheMisses: "Reads that had to fetch at least one block from the object store.",
        metadataCacheHits: "Node lookups answered from the daemon's metadata cache.",
        metadataCacheMisses: "Node lookups that asked the control plane.",
        openRevalidations: "Opens that asked the control plane for the file again (close-to-open), by result.",
        spoolPendingFiles: "Files in the spool waiting for their upload to be confirmed.",
        spoolPendingBytes: "Bytes in the spool waiting for their upload to be confirmed.",
        spoolOldestPendingAge: "Age of the oldest file waiting in the spool (0 when none waits).",
        uploadsConfirmed: "Uploads confirmed by the control plane.",
        uploadFailures: "Upload attempts that failed (each retry counts).",
        deadLetters: "Spool entries given up on and kept as dead letters.",
        concurrentWrites: "Uploads that replaced a version another machine wrote after this one opened the file.",
        serverRequests: "HTTP requests roset-server answered, by method and route.",
        serverRequestDuration: "Time roset-server took to answer an HTTP request.",
        serverRequestErrors: "HTTP requests roset-server answered with an error.",
        serverActiveRequests: "HTTP requests roset-server is answering now.",
    ]
}
