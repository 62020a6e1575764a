/// Why a sandbox could not be launched. Every case ends `cell run` with status 125 and one line
/// on stderr that names the cause (and, where there is one, the remedy).
public enum LaunchError: Error, Equatable, Sendable {
    /// Bad input: a flag, a value, a combination.
    case invalid(String)
    /// The sandbox could not be set up (a namespace, a mount, a helper...).
    case setup(String)

    public var message: String {
        switch self {
        case .invalid(let m), .setup(let m): return m
        }
    }
}
