// How `load`, `demo` and `watch` end when Ctrl-C or SIGTERM asked them to stop (ShmWorkloads'
// StopSignals catches both).

import ArgumentParser
import ShmWorkloads

extension StopSignals {
    /// Ends the command with 128 + the signal, as a shell reports a process the signal killed
    /// (what `watch` and `demo` exit with too), when a stop was requested; returns otherwise.
    static func exitIfRequested() throws {
        if signal != 0 { throw ExitCode(128 + signal) }
    }
}
