// read_image: JPEG through libjpeg gives exactly the pixels OpenCV's decoder gives for an
// intact file (the decoder used before), and a truncated or damaged JPEG is refused with
// the file named.
#include <gtest/gtest.h>

#include <ATen/ops/from_blob.h>
#include <ATen/TensorOperators.h>
#include <ATen/ops/equal.h>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <string>
#include <vector>

#include "psearch/data/image_io.h"
#include "test_util.h"

namespace {

using psearch::data::read_image;

/// A textured 48x64 BGR image encoded as JPEG (quality 90).
std::vector<uchar> sample_jpeg() {
  cv::Mat image(48, 64, CV_8UC3);
  cv::randu(image, cv::Scalar::all(0), cv::Scalar::all(255));
  cv::GaussianBlur(image, image, {5, 5}, 1.5);
  cv::rectangle(image, {10, 8}, {30, 40}, cv::Scalar(20, 200, 90), cv::FILLED);
  std::vector<uchar> bytes;
  EXPECT_TRUE(cv::imencode(".jpg", image, bytes, {cv::IMWRITE_JPEG_QUALITY, 90}));
  return bytes;
}

/// The first `keep` bytes of `bytes` as file `name` in `dir`; returns its path.
std::string write(const psearch::test::TempDir& dir, const std::string& name, const std::vector<uchar>& bytes,
                  size_t keep) {
  return dir.write(name, std::string(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(keep)));
}

std::string error_of(const std::string& path) {
  return psearch::test::error_of([&] { read_image(path); });
}

TEST(ImageIo, JpegPixelsEqualOpenCvs) {
  psearch::test::TempDir dir;
  const auto bytes = sample_jpeg();
  const at::Tensor ours = read_image(write(dir, "a.jpg", bytes, bytes.size()));
  cv::Mat bgr = cv::imdecode(bytes, cv::IMREAD_COLOR), rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  const at::Tensor theirs =
      at::from_blob(rgb.data, {rgb.rows, rgb.cols, 3}, at::kByte).permute({2, 0, 1}).to(at::kFloat).div(255.0f);
  ASSERT_EQ(ours.sizes(), theirs.sizes());
  EXPECT_TRUE(at::equal(ours, theirs.contiguous())) << "max diff " << (ours - theirs).abs().max().item<float>();
}

TEST(ImageIo, TruncatedJpegIsRefusedWithItsName) {
  psearch::test::TempDir dir;
  const auto bytes = sample_jpeg();
  const std::string path = write(dir, "cut.jpg", bytes, bytes.size() / 3);
  const std::string message = error_of(path);
  EXPECT_NE(message.find(path + ": damaged JPEG, refused: Premature end of JPEG file"), std::string::npos) << message;
}

TEST(ImageIo, CorruptJpegDataIsRefused) {
  psearch::test::TempDir dir;
  auto bytes = sample_jpeg();
  // Overwrite the middle of the entropy-coded data with marker bytes (0xFF 0xD0..: RST
  // markers out of sequence), which libjpeg reports as corrupt data.
  for (size_t i = bytes.size() / 2; i < bytes.size() / 2 + 16; i += 2) {
    bytes[i] = 0xFF;
    bytes[i + 1] = 0xD3;
  }
  const std::string path = write(dir, "bad.jpg", bytes, bytes.size());
  EXPECT_NE(error_of(path).find(path + ": damaged JPEG, refused"), std::string::npos) << error_of(path);
}

TEST(ImageIo, PngStillDecodesThroughOpenCv) {
  psearch::test::TempDir dir;
  cv::Mat image(5, 7, CV_8UC3, cv::Scalar(255, 0, 0));  // blue in BGR
  std::vector<uchar> png;
  ASSERT_TRUE(cv::imencode(".png", image, png));
  const at::Tensor rgb = read_image(write(dir, "a.png", png, png.size()));
  ASSERT_EQ(rgb.sizes(), (c10::IntArrayRef{3, 5, 7}));
  EXPECT_EQ(rgb[2].min().item<float>(), 1.0f);  // blue channel last in RGB
  EXPECT_EQ(rgb[0].max().item<float>(), 0.0f);
}

}  // namespace
