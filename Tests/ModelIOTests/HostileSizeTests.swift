import Foundation
import Testing
@testable import ModelIO

/// Files whose headers claim absurd sizes: each must be a clear error before anything of that size is
/// allocated (issue #17). The big cases (a 1 GB task line, a million merges) are measured by
/// tools/reliability/hostile_sizes.sh instead.
@Suite struct HostileSizeTests {
    // MARK: safetensors

    @Test func tensorOfTenToTheTwelveElementsIsRefused() throws {
        // 10^12 float32 elements (4 TB) with offsets that claim them: past the 16 bytes of data.
        try modelIOExpectError(modelIOHandMade(
            header: #"{"t":{"dtype":"F32","shape":[1000000,1000000],"data_offsets":[0,4000000000000]}}"#, dataLength: 16),
            "run past the data area", tensor: "t")
        // The same shape with offsets that fit the file: the sizes disagree.
        try modelIOExpectError(modelIOHandMade(
            header: #"{"t":{"dtype":"F32","shape":[1000000,1000000],"data_offsets":[0,16]}}"#, dataLength: 16),
            "needs 4000000000000 bytes but data_offsets span 16", tensor: "t")
    }

    @Test func shapesWhoseByteCountOverflowAreErrorsNotTraps() throws {
        // 2^31 × 2^31 F64: 2^62 elements fit an Int, their 2^65 bytes do not (this trapped before).
        try modelIOExpectError(modelIOHandMade(
            header: #"{"t":{"dtype":"F64","shape":[2147483648,2147483648],"data_offsets":[0,0]}}"#, dataLength: 0),
            "more than 2^63", tensor: "t")
        // An empty tensor whose other dimensions overflow (their strides would trap later).
        try modelIOExpectError(modelIOHandMade(
            header: #"{"t":{"dtype":"F32","shape":[0,4294967296,4294967296,4294967296],"data_offsets":[0,0]}}"#, dataLength: 0),
            "more than 2^63", tensor: "t")
        // Integers too large for the parser's exact range are not taken as sizes at all.
        try modelIOExpectError(modelIOHandMade(
            header: #"{"t":{"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,0]}}"#, dataLength: 0),
            "must be a list of non-negative integers", tensor: "t")
    }

    @Test(arguments: [UInt64(1) << 63, UInt64.max, (UInt64(1) << 63) + 20])
    func headerLengthAtOrAboveTwoToTheSixtyThreeIsRefused(_ declared: UInt64) throws {
        var d = Data()
        withUnsafeBytes(of: declared.littleEndian) { d.append(contentsOf: $0) }
        d.append(contentsOf: Array(#"{"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#.utf8) + [0, 0, 0, 0])
        // Not wrapped to a small or negative length (2^63 used to read as 0).
        try modelIOExpectError(d, "header length \(declared) runs past the end of the file")
    }

    @Test func headerLongerThanTheFormatsCapIsRefusedWithoutReadingIt() throws {
        // A sparse 100 MB file: only the 8-byte length is ever written, so this costs no disk or memory.
        let path = try modelIOTemporaryFile(Data(), name: "big.safetensors")
        let declared = UInt64(SafetensorsFile.maxHeaderBytes + 1)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        var bytes = Data()
        withUnsafeBytes(of: declared.littleEndian) { bytes.append(contentsOf: $0) }
        try handle.write(contentsOf: bytes)
        try handle.truncate(atOffset: declared + 64)
        try handle.close()
        do {
            _ = try SafetensorsFile(path: path)
            Issue.record("expected the header cap to refuse the file")
        } catch let error as SafetensorsError {
            #expect(error.message.contains("exceeds the format's limit of 100000000 bytes"), "\(error)")
        }
    }

    // MARK: PNG and JPEG

    @Test func pngClaimingTenBillionPixelsIsRefused() throws {
        let png = try hostilePNG(width: 100_000, height: 100_000)
        imageExpectLoadError(try imageTemporaryFile(png, name: "huge.png"), "unsupported image size 100000x100000")
    }

    @Test func pngClaimingMoreThanItsDataCanHoldIsRefusedBeforeAllocating() throws {
        // 16000 × 16000 is under the pixel cap, but a few hundred bytes of deflate cannot hold 768 MB of rows.
        let png = try hostilePNG(width: 16_000, height: 16_000)
        imageExpectLoadError(try imageTemporaryFile(png, name: "lying.png"), "deflate cannot expand")
    }

    @Test func jpegClaimingHugeSizesIsRefused() throws {
        // JPEG stores sizes in 16 bits: 65535 × 65535 is the most a header can claim; libjpeg refuses
        // more than 65500 on a side itself, and our cap (2^28 pixels) refuses the rest.
        imageExpectLoadError(try imageTemporaryFile(try hostileJPEG(width: 65_535, height: 65_535), name: "huge.jpg"), "65500")
        imageExpectLoadError(try imageTemporaryFile(try hostileJPEG(width: 60_000, height: 60_000), name: "big.jpg"),
                             "unsupported image size 60000x60000")
    }

    @Test func jpegCutShortStopsAtItsEndWhateverItsClaimedSize() throws {
        // A 10000 × 8000 claim (under the pixel cap) on a file cut inside its scan: libjpeg reaches the
        // end of the data after a few rows and the decode stops there with the truncation error.
        var jpeg = try hostileJPEG(width: 10_000, height: 8_000)
        jpeg = Array(jpeg[0..<(jpeg.count - 200)])
        imageExpectLoadError(try imageTemporaryFile(jpeg, name: "cut.jpg"), "truncated")
    }

    @Test func repairedFixturesStillDecode() throws {
        // The patching helpers themselves: the fixture with its own size written back decodes.
        let png = try hostilePNG(width: 40, height: 30)
        #expect(try RGBImage.decode(data: Data(png)).width == 40)
        let jpeg = try hostileJPEG(width: 131, height: 190)
        #expect(try RGBImage.decode(data: Data(jpeg)).height == 190)
    }
}

/// rgb_40x30.png with its IHDR size replaced (and the chunk's CRC recomputed, so libpng reads it).
private func hostilePNG(width: UInt32, height: UInt32) throws -> [UInt8] {
    var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: imageFixtureDirectory + "/rgb_40x30.png")))
    #expect(Array(bytes[12..<16]) == Array("IHDR".utf8))
    for (i, v) in [width, height].enumerated() {
        for b in 0..<4 { bytes[16 + 4 * i + b] = UInt8(truncatingIfNeeded: v >> (24 - 8 * UInt32(b))) }
    }
    let crc = crc32(bytes[12..<29])
    for b in 0..<4 { bytes[29 + b] = UInt8(truncatingIfNeeded: crc >> (24 - 8 * UInt32(b))) }
    return bytes
}

/// photo_131x190.jpg with its SOF0 size replaced.
private func hostileJPEG(width: UInt16, height: UInt16) throws -> [UInt8] {
    var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: imageFixtureDirectory + "/photo_131x190.jpg")))
    guard let sof = (2..<(bytes.count - 9)).first(where: { bytes[$0] == 0xFF && bytes[$0 + 1] == 0xC0 }) else {
        Issue.record("no SOF0 marker in the fixture")
        return bytes
    }
    bytes[sof + 5] = UInt8(height >> 8); bytes[sof + 6] = UInt8(height & 0xFF)
    bytes[sof + 7] = UInt8(width >> 8); bytes[sof + 8] = UInt8(width & 0xFF)
    return bytes
}

/// CRC-32 (ISO-HDLC, as PNG chunks use), bit by bit: a few bytes only.
private func crc32(_ bytes: ArraySlice<UInt8>) -> UInt32 {
    var crc: UInt32 = 0xFFFF_FFFF
    for byte in bytes {
        crc ^= UInt32(byte)
        for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
    }
    return ~crc
}
