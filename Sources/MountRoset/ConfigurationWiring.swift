// The resolved mount configuration (MountHelper's MountConfiguration, one struct for both command
// lines) wired into the three layers that need a part of it: the control-plane client, the file
// system and the FUSE session. One initializer each; a new option is added to MountConfiguration
// and to the one initializer of the layer that uses it.
import Foundation
import Logging
import MountHelper
import RosetClient
import RosetFS
import RosetFUSE

extension ClientConfiguration {
    init(_ config: MountConfiguration, maxAttempts: Int) {
        self.init(apiURL: config.apiURL.absoluteString, apiKey: config.apiKey.value, mountId: config.mountId,
                  connectTimeout: config.connectTimeout, requestTimeout: config.requestTimeout,
                  maxAttempts: maxAttempts, logger: Logger(label: "roset.client"))
    }
}

extension FileSystemConfiguration {
    init(_ config: MountConfiguration, apiURL: String) {
        self.init(apiURL: apiURL, mountId: config.mountId ?? "default", spoolDirectory: config.spoolDirectory)
        subdir = config.subdir
        cacheTTL = config.cacheTTL
        negativeTTL = config.negativeTTL
        closeToOpen = config.closeToOpen
        cacheSizeMB = config.cacheSizeMB
        readOnly = config.readOnly
        uid = config.uid
        gid = config.gid
        umask = config.umask
        checksAccess = (config.allowOther || config.allowRoot) && !config.defaultPermissions
        fileMode = config.fileMode
        dirMode = config.dirMode
        spoolMaxMB = config.spoolMaxMB
        dataCacheDirectory = config.dataCacheDirectory
        dataCacheMaxMB = config.dataCacheMaxMB
        dataCacheMinFreeMB = config.dataCacheMinFreeMB
        uploadConcurrency = config.uploadConcurrency
        partSizeMB = config.partSizeMB
        closeWait = config.closeWait
        directIO = config.directIO
        spliceRead = config.spliceRead
        kernelReadAheadKB = config.readAheadKB > 0 ? config.readAheadKB : 128
        uploadDelay = Double(config.uploadDelayMs) / 1000
        shutdownGrace = config.shutdownGrace
    }
}

extension FUSEMountOptions {
    init(_ config: MountConfiguration) {
        self.init(
            fsName: config.fsName, subtype: "roset", readOnly: config.readOnly, allowOther: config.allowOther,
            allowRoot: config.allowRoot, defaultPermissions: config.defaultPermissions,
            kernelFlags: Set(config.vfsFlags.compactMap { FUSEMountOptions.KernelFlag(rawValue: $0.rawValue) }),
            maxRead: config.maxRead, blockSize: config.blockSize, maxThreads: config.maxThreads,
            readAheadKB: config.readAheadKB)
    }
}

/// Builds the filesystem for `config`: authenticates, resolves the root and recovers the spool
/// (all inside RosetFileSystem.init), so that a wrong key or an unreachable control plane fails
/// the mount with a message instead of mounting a broken tree. Runs in the daemon, after the
/// forks: libcurl's and the uploader's threads start here, never earlier.
func makeFileSystem(_ config: MountConfiguration) throws -> FileSystemOperations {
    // A wrong key or an unreachable control plane fails the mount after the client's usual few
    // attempts. Once mounted, a failed call becomes an errno in some application, so the
    // mount's own client tries harder: with 20% of answers failing (a flaky store), the default
    // 10 attempts (retries=9) leave about one call in four million failing, where 5 left one in
    // two thousand.
    do {
        let probe = RosetAPIClient(configuration: ClientConfiguration(config, maxAttempts: min(5, config.maxAttempts)))
        _ = try probe.resolveRoot()
    } catch let error as RosetError {
        throw MountHelperError(MountFailureMessage.startup(error, config: config),
                               exitStatus: MountHelperError.mountFailureStatus)
    }
    let client = RosetAPIClient(configuration: ClientConfiguration(config, maxAttempts: config.maxAttempts))
    do {
        return try RosetFileSystem(configuration: FileSystemConfiguration(config, apiURL: client.configuration.apiURL),
                                   controlPlane: client, store: client, logger: Logger(label: "roset.fs"))
    } catch let error as RosetError {
        throw MountHelperError(MountFailureMessage.startup(error, config: config),
                               exitStatus: MountHelperError.mountFailureStatus)
    }
}
