#pragma once
/// SHA-256 digests (OpenSSL's libcrypto), as lowercase hex: how a gallery recognises the
/// checkpoint or weight files its embeddings came from.
#include <string>
#include <string_view>

namespace psearch::util {

/// Digest of a file's bytes. Throws std::runtime_error "<path>: ..." when it cannot be read.
std::string sha256_file(const std::string& path);
/// Digest of a string.
std::string sha256_text(std::string_view text);

}  // namespace psearch::util
