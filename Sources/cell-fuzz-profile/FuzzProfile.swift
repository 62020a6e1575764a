// The profile loader's fuzz target (libFuzzer), and a replayer for its corpus.
//
//   Scripts/fuzz [SECONDS]          build with -sanitize=fuzzer and fuzz (default 60 s)
//   cell-fuzz-profile FILE...       (normal build) check each file once: the corpus replay
//
// The property: ProfileFuzzing.check — no crash, diagnostics with a place, show round-trips.
import CellProfile

#if FUZZING
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<Int32>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
) -> Int32

/// The input callback libFuzzer's archive requires by name.
@_cdecl("LLVMFuzzerTestOneInput")
func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    do {
        try ProfileFuzzing.check(text)
    } catch {
        fatalError("profile property violated: \(error)")
    }
    return 0
}

/// SwiftPM links an executable's entry point as `<module>_main`; under libFuzzer it hands over
/// to libFuzzer's driver.
@_cdecl("cell_fuzz_profile_main")
func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    var count = argc
    var arguments = argv
    return LLVMFuzzerRunDriver(&count, &arguments, fuzzOneInput)
}
#else
import Glibc

@main
struct ReplayCorpus {
    static func main() {
        var failures: Int32 = 0
        for path in CommandLine.arguments.dropFirst() {
            guard let file = fopen(path, "r") else { continue }
            var bytes: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = fread(&buffer, 1, buffer.count, file)
                if n <= 0 { break }
                bytes += buffer[0..<n]
            }
            fclose(file)
            do {
                try ProfileFuzzing.check(String(decoding: bytes, as: UTF8.self))
            } catch {
                print("\(path): \(error)")
                failures += 1
            }
        }
        exit(failures == 0 ? 0 : 1)
    }
}
#endif
