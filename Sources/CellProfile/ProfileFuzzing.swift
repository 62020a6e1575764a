import CellPolicy

/// The property the profile fuzzer checks on any input (Sources/cell-fuzz-profile): loading a
/// profile never crashes, and either fails with diagnostics that name a place in the file, or
/// succeeds with a profile whose `show` output loads back to the same profile.
public enum ProfileFuzzing {
    public enum Failure: Error, Equatable {
        case diagnosticWithoutPlace(String)
        case roundTripDiffers(String)
        case shownProfileRejected(String)
    }

    public static func check(_ text: String) throws(Failure) {
        let path = "/fuzz/profile.toml"
        let variables = ProfileVariables(cwd: "/work", home: "/home/fuzz", tmpdir: "/tmp", uid: 1000)
        let loader = ProfileLoader(variables: variables, userDirectory: nil, systemDirectory: nil,
                                   readFile: { $0 == path ? text : nil }, listDirectory: { _ in [] })
        let profile: Profile
        do {
            profile = try loader.resolve(path)
        } catch {
            for d in error.diagnostics where d.file == path && (d.line < 1 || d.column < 1) {
                throw .diagnosticWithoutPlace(d.description)
            }
            return
        }
        let shown = ProfileWriter.toml(profile)
        let again = ProfileLoader(variables: variables, userDirectory: nil, systemDirectory: nil,
                                  readFile: { $0 == path ? shown : nil }, listDirectory: { _ in [] })
        do {
            var back = try again.resolve(path)
            back.name = profile.name
            if back != profile { throw Failure.roundTripDiffers(shown) }
        } catch let failure as Failure {
            throw failure
        } catch {
            throw .shownProfileRejected(shown + "\n" + (error as? ProfileDiagnosticList).map { $0.diagnostics.map(\.description).joined(separator: "\n") }.debugDescription)
        }
    }
}
