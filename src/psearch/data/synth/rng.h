#pragma once
/// Deterministic random numbers for the synthetic dataset generator.
///
/// std::uniform_int_distribution and friends are implementation-defined (libstdc++ and
/// libc++ give different sequences for the same engine), so the generator draws raw 64-bit
/// words from std::mt19937_64 (whose output the standard fixes) and converts them here.
#include <cmath>
#include <cstdint>
#include <random>
#include <utility>
#include <vector>

namespace psearch::data::synth {

/// SplitMix64 finaliser: turns (seed, stream) pairs into well-spread engine seeds, so a
/// frame's random stream depends only on the dataset seed and the frame's index, not on
/// the order (or thread) in which frames are rendered.
inline uint64_t mix_seed(uint64_t seed, uint64_t stream) {
  uint64_t z = seed + 0x9E3779B97F4A7C15ull * (stream + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

class Rng {
 public:
  explicit Rng(uint64_t seed) : engine_(seed) {}

  uint64_t bits() { return engine_(); }

  /// Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(bits() >> 11) * (1.0 / 9007199254740992.0); }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }

  /// Uniform integer in [lo, hi] (inclusive). The multiply-shift mapping has a bias of at
  /// most range / 2^64, irrelevant here, and is the same on every platform.
  int64_t integer(int64_t lo, int64_t hi) {
    if (hi <= lo) return lo;
    const auto range = static_cast<unsigned __int128>(static_cast<uint64_t>(hi - lo) + 1);
    return lo + static_cast<int64_t>((range * bits()) >> 64);
  }

  bool chance(double p) { return uniform() < p; }

  /// Normal deviate by Box-Muller (one of the pair; simpler than caching the second).
  double normal(double mean, double sd) {
    const double u1 = 1.0 - uniform();  // (0, 1]: log is finite
    const double u2 = uniform();
    return mean + sd * std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }

  template <class T>
  const T& pick(const std::vector<T>& items) {
    return items[static_cast<size_t>(integer(0, static_cast<int64_t>(items.size()) - 1))];
  }

  /// Fisher-Yates with our own integer(): std::shuffle's sequence is implementation-defined.
  template <class T>
  void shuffle(std::vector<T>& items) {
    for (size_t i = items.size(); i > 1; --i) std::swap(items[i - 1], items[static_cast<size_t>(integer(0, i - 1))]);
  }

 private:
  std::mt19937_64 engine_;
};

}  // namespace psearch::data::synth
