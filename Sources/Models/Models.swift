/// Transformer models loaded from Hugging Face checkpoints (vision towers, decoder LMs, LLaVA
/// assemblies) with hook points where token compressors plug in.
public enum Models {
    /// Architectures (`config.json` `architectures[0]`) this module can run.
    public static var supportedArchitectures: [String] { [] }
}
