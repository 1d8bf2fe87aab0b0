#include "psearch/server/search_service.h"

#include <ATen/core/Tensor.h>
#include <c10/core/GradMode.h>
#include <openssl/evp.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "psearch/data/image_io.h"
#include "psearch/gallery/indexer.h"
#include "psearch/gallery/report.h"

namespace psearch::server {
namespace {

/// Standard base64 (a "data:...;base64," prefix allowed) -> bytes.
std::string decode_base64(std::string text) {
  if (const size_t comma = text.find(','); text.rfind("data:", 0) == 0 && comma != std::string::npos)
    text = text.substr(comma + 1);
  text.erase(std::remove_if(text.begin(), text.end(), [](char c) { return std::isspace(static_cast<unsigned char>(c)); }),
             text.end());
  if (text.empty() || text.size() % 4 != 0) throw BadRequest("image: not base64 (length not a multiple of 4)");
  std::string out(text.size() / 4 * 3, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(text.data()), static_cast<int>(text.size()));
  if (n < 0) throw BadRequest("image: not base64");
  const size_t padding = std::count(text.end() - 2, text.end(), '=');
  out.resize(static_cast<size_t>(n) - padding);
  return out;
}

/// An upload, decoded as image files are (a damaged JPEG is refused, not half decoded).
at::Tensor decode_upload(const std::string& bytes) {
  try {
    return data::decode_image(std::vector<unsigned char>(bytes.begin(), bytes.end()), "upload");
  } catch (const std::exception& e) {
    throw BadRequest(std::string("image: not an image that can be decoded (JPEG, PNG, BMP, ...): ") + e.what());
  }
}

std::vector<double> read_box(const nlohmann::json& request) {
  if (!request.contains("box")) throw BadRequest("request: \"box\": [x1, y1, x2, y2] is missing");
  const auto box = request.at("box").get<std::vector<double>>();
  if (box.size() != 4 || !std::all_of(box.begin(), box.end(), [](double v) { return std::isfinite(v); }))
    throw BadRequest("request: \"box\" must be 4 finite numbers [x1, y1, x2, y2]");
  return box;
}

gallery::SearchFilter read_filter(const nlohmann::json& request) {
  gallery::SearchFilter filter;
  if (request.contains("cameras")) filter.cameras = request.at("cameras").get<std::vector<std::string>>();
  if (request.contains("from") && !request.at("from").is_null()) filter.time_from = request.at("from").get<double>();
  if (request.contains("to") && !request.at("to").is_null()) filter.time_to = request.at("to").get<double>();
  return filter;
}

}  // namespace

SearchService::SearchService(const std::string& gallery_path, gallery::IndexKind kind, std::string checkpoint,
                             c10::Device device)
    : store_(gallery_path, gallery::GalleryStore::Mode::kRead), checkpoint_(std::move(checkpoint)), device_(device) {
  const auto recorded = store_.model();
  if (!recorded) throw std::runtime_error(gallery_path + ": the gallery holds no detection; add video with psearch index first");
  identity_ = *recorded;
  searcher_ = std::make_unique<gallery::GallerySearcher>(store_, kind);
  recall_at_20_ = searcher_->index().recall_at_k(20);  // 1 for the exact index
}

gallery::GalleryModel& SearchService::model() {
  // Loaded on the first image query: searches from stored detections need no model.
  if (!model_) model_ = std::make_unique<gallery::GalleryModel>(gallery::load_recorded_model(identity_, checkpoint_, device_));
  return *model_;
}

nlohmann::json SearchService::health() {
  std::shared_lock lock(index_mutex_);
  return {{"status", "ok"}, {"detections", searcher_->index().size()}, {"model", identity_.type}};
}

nlohmann::json SearchService::stats() {
  const gallery::GalleryStats s = store_.stats();
  nlohmann::json sources = nlohmann::json::array();
  for (const auto& r : store_.sources())
    sources.push_back({{"id", r.id}, {"path", r.path}, {"camera", r.camera}, {"kind", gallery::to_string(r.kind)},
                       {"fps", r.fps}, {"stride", r.stride}, {"frames_indexed", r.frames_indexed},
                       {"frames_total", r.frames_total}, {"state", r.state}, {"message", r.message}});
  nlohmann::json cameras = nlohmann::json::object();
  for (const auto& [camera, count] : s.detections_per_camera) cameras[camera] = count;
  return {{"model", {{"type", identity_.type}, {"source", identity_.source}, {"sha256", identity_.sha256},
                     {"embedding_dim", identity_.embedding_dim}}},
          {"detections", s.detections}, {"frames_indexed", s.frames_indexed}, {"frames_failed", s.frames_failed},
          {"cameras", cameras}, {"sources", sources}, {"index", gallery::to_string(searcher_->index().kind())},
          {"index_recall_at_20", recall_at_20_}};
}

nlohmann::json SearchService::source_frames(int64_t source_id) {
  try {
    store_.source(source_id);
  } catch (const std::runtime_error&) {
    throw NotFound("no source with id " + std::to_string(source_id));
  }
  nlohmann::json out = nlohmann::json::array();
  for (const auto& [frame, count] : store_.frames_with_detections(source_id)) out.push_back({frame, count});
  return out;
}

nlohmann::json SearchService::frame_detections(int64_t source_id, int64_t frame) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& d : store_.frame_detections(source_id, frame))
    out.push_back({{"id", d.id}, {"box", {d.box[0], d.box[1], d.box[2], d.box[3]}}, {"score", d.score}});
  return out;
}

at::Tensor SearchService::read_frame(int64_t source_id, int64_t frame) {
  gallery::SourceRecord source;
  try {
    source = store_.source(source_id);
  } catch (const std::runtime_error&) {
    throw NotFound("no source with id " + std::to_string(source_id));
  }
  gallery::DetectionRecord where;
  where.source_id = source_id;
  where.source_path = source.path;
  where.frame = frame;
  if (source.kind == gallery::SourceKind::kFolder) {
    const auto stored = store_.frame_detections(source_id, frame);
    if (!stored.empty()) {
      where.image = stored.front().image;
    } else {
      const auto files = gallery::folder_images(source.path);
      if (frame < 0 || frame >= static_cast<int64_t>(files.size())) throw NotFound("no frame " + std::to_string(frame));
      where.image = std::filesystem::path(files[frame]).filename().string();
    }
  }
  const auto frames = gallery::read_frames({where});
  const auto it = frames.find({source_id, frame});
  if (it == frames.end()) throw NotFound(source.path + ": cannot read frame " + std::to_string(frame));
  return it->second;
}

gallery::Query SearchService::make_query(const nlohmann::json& request) {
  const bool cbgm = request.value("cbgm", false);
  if (request.contains("id")) {
    const int64_t id = request.at("id").get<int64_t>();
    try {
      return gallery::query_from_detection(store_, id, cbgm);
    } catch (const std::runtime_error& e) {
      throw NotFound(e.what());
    }
  }
  at::Tensor image;
  std::string description;
  if (request.contains("image")) {
    image = decode_upload(decode_base64(request.at("image").get<std::string>()));
    description = "uploaded image";
  } else if (request.contains("source") && request.contains("frame")) {
    const int64_t source = request.at("source").get<int64_t>(), frame = request.at("frame").get<int64_t>();
    image = read_frame(source, frame);
    description = "source " + std::to_string(source) + " frame " + std::to_string(frame);
  } else {
    throw BadRequest("request: give \"id\", or \"image\" and \"box\", or \"source\", \"frame\" and \"box\"");
  }
  std::vector<double> box = read_box(request);
  float checked[4];
  std::copy(box.begin(), box.end(), checked);
  try {
    gallery::check_query_box(checked, image.size(2), image.size(1), description);
  } catch (const std::runtime_error& e) {
    throw BadRequest(e.what());
  }
  std::lock_guard lock(model_mutex_);
  c10::NoGradGuard no_grad;
  return gallery::query_from_image(image, box, model(), description, cbgm);
}

nlohmann::json SearchService::search(const nlohmann::json& request) {
  if (!request.is_object()) throw BadRequest("request: a JSON object expected");
  gallery::SearchRequest search;
  gallery::Query query;
  try {
    query = make_query(request);
    search.filter = read_filter(request);
    search.top_k = request.value("top_k", int64_t{20});
    search.min_similarity = request.contains("min_similarity") && !request.at("min_similarity").is_null()
                                ? request.at("min_similarity").get<double>()
                                : -1.0;
  } catch (const nlohmann::json::exception& e) {
    throw BadRequest(std::string("request: ") + e.what());
  }
  if (search.top_k < 1 || search.top_k > 1000) throw BadRequest("request: \"top_k\" must be 1 to 1000");
  search.query = query.embedding;
  search.exclude_id = query.detection_id;
  search.context = query.context;
  {
    std::unique_lock lock(index_mutex_);
    searcher_->refresh();  // detections an indexer added meanwhile
  }
  std::shared_lock lock(index_mutex_);
  const auto hits = searcher_->search(search);
  nlohmann::json out{{"query", {{"description", query.description},
                                {"box", {query.box[0], query.box[1], query.box[2], query.box[3]}}}},
                     {"hits", gallery::hits_json(hits)}};
  if (query.detection_id) out["query"]["id"] = *query.detection_id;
  return out;
}

std::vector<unsigned char> SearchService::detection_jpeg(int64_t id, bool whole_frame) {
  gallery::DetectionRecord d;
  try {
    d = store_.detections({id}).at(0);
  } catch (const std::runtime_error&) {
    throw NotFound("no detection with id " + std::to_string(id));
  }
  const at::Tensor image = read_frame(d.source_id, d.frame);
  return whole_frame ? gallery::frame_jpeg(image, d.box) : gallery::crop_jpeg(image, d.box, 192);
}

std::vector<unsigned char> SearchService::frame_jpeg(int64_t source_id, int64_t frame) {
  const at::Tensor image = read_frame(source_id, frame);
  return gallery::frame_jpeg(image, nullptr);
}

}  // namespace psearch::server
