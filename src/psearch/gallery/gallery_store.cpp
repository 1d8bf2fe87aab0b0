#include "psearch/gallery/gallery_store.h"

#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <sqlite3.h>

#include <cstring>
#include <filesystem>
#include <stdexcept>

#include "psearch/util/strings.h"

namespace psearch::gallery {
namespace {

constexpr const char* kFormat = "psearch-gallery/1";

constexpr const char* kSchema = R"SQL(
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sources(
  id INTEGER PRIMARY KEY, path TEXT UNIQUE NOT NULL, camera TEXT NOT NULL, kind TEXT NOT NULL,
  stride INTEGER NOT NULL, fps REAL NOT NULL, frames_total INTEGER NOT NULL,
  next_frame INTEGER NOT NULL DEFAULT 0, frames_indexed INTEGER NOT NULL DEFAULT 0,
  frames_failed INTEGER NOT NULL DEFAULT 0, state TEXT NOT NULL, message TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS detections(
  id INTEGER PRIMARY KEY, source_id INTEGER NOT NULL REFERENCES sources(id),
  frame INTEGER NOT NULL, time REAL NOT NULL, image TEXT NOT NULL,
  x1 REAL NOT NULL, y1 REAL NOT NULL, x2 REAL NOT NULL, y2 REAL NOT NULL, score REAL NOT NULL,
  embedding BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS detections_by_frame ON detections(source_id, frame);
)SQL";

/// A prepared statement, finalized on scope exit. Errors name the gallery file.
class Statement {
 public:
  Statement(sqlite3* db, const std::string& sql, const std::string& path) : db_(db), path_(path) {
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt_, nullptr) != SQLITE_OK) fail();
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  Statement& bind(int i, int64_t v) { return check(sqlite3_bind_int64(stmt_, i, v)); }
  Statement& bind(int i, double v) { return check(sqlite3_bind_double(stmt_, i, v)); }
  Statement& bind(int i, const std::string& v) {
    return check(sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
  }
  Statement& bind_blob(int i, const void* data, size_t bytes) {
    return check(sqlite3_bind_blob64(stmt_, i, data, bytes, SQLITE_STATIC));
  }
  /// True while there is a row to read.
  bool step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc != SQLITE_DONE) fail();
    return false;
  }
  void run() {
    step();
    reset();
  }
  /// Ready to bind and step again.
  void reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  int64_t integer(int col) const { return sqlite3_column_int64(stmt_, col); }
  double real(int col) const { return sqlite3_column_double(stmt_, col); }
  std::string text(int col) const {
    const auto* p = sqlite3_column_text(stmt_, col);
    return p ? std::string(reinterpret_cast<const char*>(p), sqlite3_column_bytes(stmt_, col)) : std::string();
  }
  const void* blob(int col) const { return sqlite3_column_blob(stmt_, col); }
  int bytes(int col) const { return sqlite3_column_bytes(stmt_, col); }

 private:
  Statement& check(int rc) {
    if (rc != SQLITE_OK) fail();
    return *this;
  }
  [[noreturn]] void fail() const { throw std::runtime_error(path_ + ": " + sqlite3_errmsg(db_)); }

  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  std::string path_;
};

SourceKind kind_from_string(const std::string& s) {
  if (s == "video") return SourceKind::kVideo;
  if (s == "folder") return SourceKind::kFolder;
  return SourceKind::kImage;
}

constexpr const char* kSourceColumns =
    "id, path, camera, kind, stride, fps, frames_total, next_frame, frames_indexed, frames_failed, state, message";

SourceRecord read_source(const Statement& s) {
  SourceRecord r;
  r.id = s.integer(0);
  r.path = s.text(1);
  r.camera = s.text(2);
  r.kind = kind_from_string(s.text(3));
  r.stride = s.integer(4);
  r.fps = s.real(5);
  r.frames_total = s.integer(6);
  r.next_frame = s.integer(7);
  r.frames_indexed = s.integer(8);
  r.frames_failed = s.integer(9);
  r.state = s.text(10);
  r.message = s.text(11);
  return r;
}

constexpr const char* kDetectionColumns =
    "d.id, d.source_id, s.camera, s.path, d.frame, d.time, d.image, d.x1, d.y1, d.x2, d.y2, d.score";

DetectionRecord read_detection(const Statement& s) {
  DetectionRecord r;
  r.id = s.integer(0);
  r.source_id = s.integer(1);
  r.camera = s.text(2);
  r.source_path = s.text(3);
  r.frame = s.integer(4);
  r.time = s.real(5);
  r.image = s.text(6);
  for (int k = 0; k < 4; ++k) r.box[k] = static_cast<float>(s.real(7 + k));
  r.score = static_cast<float>(s.real(11));
  return r;
}

std::string join_lines(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : "\n") + item;
  return out;
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < text.size()) {
    const size_t end = text.find('\n', start);
    out.push_back(text.substr(start, end == std::string::npos ? std::string::npos : end - start));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return out;
}

}  // namespace

std::string to_string(SourceKind kind) {
  switch (kind) {
    case SourceKind::kVideo: return "video";
    case SourceKind::kFolder: return "folder";
    case SourceKind::kImage: return "image";
  }
  return "video";
}

GalleryStore::GalleryStore(const std::string& path, Mode mode) : path_(path) {
  const bool exists = std::filesystem::exists(path);
  if (!exists && mode != Mode::kCreateOrWrite) throw std::runtime_error(path + ": no such gallery");
  if (exists && std::filesystem::is_directory(path)) throw std::runtime_error(path + ": is a folder, not a gallery file");
  const int flags = mode == Mode::kRead ? SQLITE_OPEN_READONLY
                    : mode == Mode::kWrite ? SQLITE_OPEN_READWRITE
                                           : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
  // FULLMUTEX: the HTTP server shares one connection between its worker threads.
  if (sqlite3_open_v2(path.c_str(), &db_, flags | SQLITE_OPEN_FULLMUTEX, nullptr) != SQLITE_OK) {
    const std::string message = db_ ? sqlite3_errmsg(db_) : "cannot open";
    sqlite3_close(db_);
    db_ = nullptr;
    throw std::runtime_error(path + ": " + message);
  }
  sqlite3_busy_timeout(db_, 10000);  // another process (an indexer) may hold the write lock
  try {
    if (mode != Mode::kRead) {
      exec("PRAGMA journal_mode=WAL");
      exec("PRAGMA synchronous=NORMAL");  // WAL + NORMAL: a commit survives a process crash
    }
    Statement tables(db_, "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='meta'", path_);
    tables.step();
    const bool has_meta = tables.integer(0) > 0;
    if (!has_meta) {
      Statement any(db_, "SELECT count(*) FROM sqlite_master", path_);
      any.step();
      if (any.integer(0) > 0 || mode == Mode::kRead) throw std::runtime_error(path + ": not a psearch gallery");
      exec("BEGIN");
      exec(kSchema);
      Statement put(db_, "INSERT INTO meta(key, value) VALUES('format', ?)", path_);
      put.bind(1, std::string(kFormat)).run();
      exec("INSERT INTO meta(key, value) VALUES('gallery_id', lower(hex(randomblob(16))))");
      exec("COMMIT");
    }
    Statement format(db_, "SELECT value FROM meta WHERE key='format'", path_);
    const std::string found = format.step() ? format.text(0) : "";
    if (found != kFormat)
      throw std::runtime_error(path + ": gallery format '" + found + "', this psearch reads '" + kFormat + "'");
  } catch (const std::runtime_error& e) {
    sqlite3_close(db_);
    db_ = nullptr;
    const std::string what = e.what();
    // SQLite calls a file that is not a database "file is not a database"; say which file.
    throw std::runtime_error(what.rfind(path, 0) == 0 ? what : path + ": " + what);
  }
}

GalleryStore::~GalleryStore() { sqlite3_close(db_); }

std::string GalleryStore::gallery_id() const {
  Statement s(db_, "SELECT value FROM meta WHERE key = 'gallery_id'", path_);
  return s.step() ? s.text(0) : std::string();
}

void GalleryStore::exec(const std::string& sql) const {
  char* error = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &error) != SQLITE_OK) {
    const std::string message = error ? error : sqlite3_errmsg(db_);
    sqlite3_free(error);
    throw std::runtime_error(path_ + ": " + message);
  }
}

void GalleryStore::fail(const std::string& what) const { throw std::runtime_error(path_ + ": " + what); }

std::optional<ModelIdentity> GalleryStore::model() const {
  Statement s(db_, "SELECT key, value FROM meta WHERE key LIKE 'model_%'", path_);
  ModelIdentity m;
  bool any = false;
  while (s.step()) {
    any = true;
    const std::string key = s.text(0), value = s.text(1);
    if (key == "model_type") m.type = value;
    else if (key == "model_source") m.source = value;
    else if (key == "model_sha256") m.sha256 = value;
    else if (key == "model_embedding_dim") m.embedding_dim = std::stoll(value);
    else if (key == "model_overrides") m.overrides = split_lines(value);
  }
  if (!any) return std::nullopt;
  return m;
}

void GalleryStore::bind_model(const ModelIdentity& model) {
  if (const auto recorded = this->model()) {
    if (recorded->type != model.type || recorded->sha256 != model.sha256 ||
        recorded->embedding_dim != model.embedding_dim)
      fail("built with " + recorded->type + " (" + recorded->source + ", sha256 " + recorded->sha256.substr(0, 12) +
           ", " + std::to_string(recorded->embedding_dim) + "-d), not " + model.type + " (" + model.source +
           ", sha256 " + model.sha256.substr(0, 12) + ", " + std::to_string(model.embedding_dim) +
           "-d): use a new gallery file for another model");
    return;
  }
  exec("BEGIN IMMEDIATE");
  try {
    Statement put(db_, "INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)", path_);
    put.bind(1, std::string("model_type")).bind(2, model.type).run();
    put.bind(1, std::string("model_source")).bind(2, model.source).run();
    put.bind(1, std::string("model_sha256")).bind(2, model.sha256).run();
    put.bind(1, std::string("model_embedding_dim")).bind(2, std::to_string(model.embedding_dim)).run();
    put.bind(1, std::string("model_overrides")).bind(2, join_lines(model.overrides)).run();
    exec("COMMIT");
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

std::optional<SourceRecord> GalleryStore::find_source(const std::string& path) const {
  Statement s(db_, std::string("SELECT ") + kSourceColumns + " FROM sources WHERE path = ?", path_);
  s.bind(1, path);
  if (!s.step()) return std::nullopt;
  return read_source(s);
}

SourceRecord GalleryStore::add_source(SourceRecord source) {
  Statement s(db_,
              "INSERT INTO sources(path, camera, kind, stride, fps, frames_total, state) VALUES(?, ?, ?, ?, ?, ?, "
              "'indexing')",
              path_);
  s.bind(1, source.path).bind(2, source.camera).bind(3, to_string(source.kind)).bind(4, source.stride);
  s.bind(5, source.fps).bind(6, source.frames_total).run();
  source.id = sqlite3_last_insert_rowid(db_);
  source.state = "indexing";
  return source;
}

std::vector<SourceRecord> GalleryStore::sources() const {
  Statement s(db_, std::string("SELECT ") + kSourceColumns + " FROM sources ORDER BY id", path_);
  std::vector<SourceRecord> out;
  while (s.step()) out.push_back(read_source(s));
  return out;
}

SourceRecord GalleryStore::source(int64_t id) const {
  Statement s(db_, std::string("SELECT ") + kSourceColumns + " FROM sources WHERE id = ?", path_);
  s.bind(1, id);
  if (!s.step()) fail("no source with id " + std::to_string(id));
  return read_source(s);
}

std::vector<std::pair<int64_t, int64_t>> GalleryStore::frames_with_detections(int64_t source_id) const {
  Statement s(db_, "SELECT frame, count(*) FROM detections WHERE source_id = ? GROUP BY frame ORDER BY frame", path_);
  s.bind(1, source_id);
  std::vector<std::pair<int64_t, int64_t>> out;
  while (s.step()) out.emplace_back(s.integer(0), s.integer(1));
  return out;
}

void GalleryStore::commit_frames(int64_t source_id, const std::vector<FrameDetections>& frames, int64_t next_frame,
                                 int64_t frames_failed) {
  exec("BEGIN IMMEDIATE");
  try {
    Statement insert(db_,
                     "INSERT INTO detections(source_id, frame, time, image, x1, y1, x2, y2, score, embedding) "
                     "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     path_);
    for (const FrameDetections& f : frames) {
      const int64_t n = f.boxes.defined() ? f.boxes.size(0) : 0;
      if (n == 0) continue;
      const at::Tensor boxes = f.boxes.to(at::kDouble).contiguous();
      const at::Tensor scores = f.scores.to(at::kDouble).contiguous();
      const at::Tensor features = f.features.to(at::kFloat).contiguous();
      const auto b = boxes.accessor<double, 2>();
      const auto sc = scores.accessor<double, 1>();
      const size_t row_bytes = static_cast<size_t>(features.size(1)) * sizeof(float);
      for (int64_t i = 0; i < n; ++i) {
        insert.bind(1, source_id).bind(2, f.frame).bind(3, f.time).bind(4, f.image);
        for (int k = 0; k < 4; ++k) insert.bind(5 + k, b[i][k]);
        insert.bind(9, sc[i]);
        insert.bind_blob(10, features.data_ptr<float>() + i * features.size(1), row_bytes);
        insert.run();
      }
    }
    Statement progress(db_,
                       "UPDATE sources SET next_frame = ?, frames_indexed = frames_indexed + ?, "
                       "frames_failed = frames_failed + ? WHERE id = ?",
                       path_);
    progress.bind(1, next_frame).bind(2, static_cast<int64_t>(frames.size())).bind(3, frames_failed);
    progress.bind(4, source_id).run();
    exec("COMMIT");
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

void GalleryStore::finish_source(int64_t source_id, const std::string& state, const std::string& message,
                                 std::optional<int64_t> frames_total) {
  Statement s(db_, "UPDATE sources SET state = ?, message = ?, frames_total = coalesce(?, frames_total) WHERE id = ?",
              path_);
  s.bind(1, state).bind(2, message);
  if (frames_total) s.bind(3, *frames_total);
  s.bind(4, source_id).run();
}

std::vector<int64_t> GalleryStore::select(const SearchFilter& filter) const {
  std::string sql = "SELECT d.id FROM detections d JOIN sources s ON s.id = d.source_id WHERE 1";
  if (!filter.cameras.empty()) {
    sql += " AND s.camera IN (";
    for (size_t i = 0; i < filter.cameras.size(); ++i) sql += i ? ", ?" : "?";
    sql += ")";
  }
  if (filter.time_from) sql += " AND d.time >= ?";
  if (filter.time_to) sql += " AND d.time <= ?";
  sql += " ORDER BY d.id";
  Statement s(db_, sql, path_);
  int i = 1;
  for (const auto& camera : filter.cameras) s.bind(i++, camera);
  if (filter.time_from) s.bind(i++, *filter.time_from);
  if (filter.time_to) s.bind(i++, *filter.time_to);
  std::vector<int64_t> ids;
  while (s.step()) ids.push_back(s.integer(0));
  return ids;
}

std::pair<at::Tensor, at::Tensor> GalleryStore::embeddings(int64_t after_id) const {
  const auto recorded = model();
  const int64_t dim = recorded ? recorded->embedding_dim : 0;
  // Read in one transaction so that the count and the rows agree while an indexer writes.
  Statement begin(db_, "BEGIN", path_);
  begin.run();
  try {
    Statement count(db_, "SELECT count(*) FROM detections WHERE id > ?", path_);
    count.bind(1, after_id);
    count.step();
    const int64_t n = count.integer(0);
    at::Tensor ids = at::empty({n}, at::kLong);
    at::Tensor matrix = at::empty({n, dim}, at::kFloat);
    Statement s(db_, "SELECT id, embedding FROM detections WHERE id > ? ORDER BY id", path_);
    s.bind(1, after_id);
    int64_t row = 0;
    auto* id_data = ids.data_ptr<int64_t>();
    auto* out = matrix.data_ptr<float>();
    while (row < n && s.step()) {
      if (s.bytes(1) != static_cast<int>(dim * sizeof(float)))
        fail("detection " + std::to_string(s.integer(0)) + " has a " + std::to_string(s.bytes(1)) +
             "-byte embedding, expected " + std::to_string(dim) + " floats");
      id_data[row] = s.integer(0);
      std::memcpy(out + row * dim, s.blob(1), dim * sizeof(float));
      ++row;
    }
    exec("COMMIT");
    return {ids.narrow(0, 0, row), matrix.narrow(0, 0, row)};
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

at::Tensor GalleryStore::embeddings_of(const std::vector<int64_t>& ids) const {
  const auto recorded = model();
  const int64_t dim = recorded ? recorded->embedding_dim : 0;
  at::Tensor out = at::empty({static_cast<int64_t>(ids.size()), dim}, at::kFloat);
  Statement s(db_, "SELECT embedding FROM detections WHERE id = ?", path_);
  for (size_t i = 0; i < ids.size(); ++i) {
    s.bind(1, ids[i]);
    if (!s.step()) fail("no detection with id " + std::to_string(ids[i]));
    if (s.bytes(0) != static_cast<int>(dim * sizeof(float))) fail("detection " + std::to_string(ids[i]) + ": bad embedding size");
    std::memcpy(out.data_ptr<float>() + i * dim, s.blob(0), dim * sizeof(float));
    s.reset();
  }
  return out;
}

std::vector<DetectionRecord> GalleryStore::detections(const std::vector<int64_t>& ids) const {
  Statement s(db_,
              std::string("SELECT ") + kDetectionColumns +
                  " FROM detections d JOIN sources s ON s.id = d.source_id WHERE d.id = ?",
              path_);
  std::vector<DetectionRecord> out;
  for (const int64_t id : ids) {
    s.bind(1, id);
    if (!s.step()) fail("no detection with id " + std::to_string(id));
    out.push_back(read_detection(s));
    s.reset();
  }
  return out;
}

std::vector<DetectionRecord> GalleryStore::frame_detections(int64_t source_id, int64_t frame) const {
  Statement s(db_,
              std::string("SELECT ") + kDetectionColumns +
                  " FROM detections d JOIN sources s ON s.id = d.source_id WHERE d.source_id = ? AND d.frame = ? "
                  "ORDER BY d.score DESC",
              path_);
  s.bind(1, source_id).bind(2, frame);
  std::vector<DetectionRecord> out;
  while (s.step()) out.push_back(read_detection(s));
  return out;
}

int64_t GalleryStore::max_id() const {
  Statement s(db_, "SELECT coalesce(max(id), 0) FROM detections", path_);
  s.step();
  return s.integer(0);
}

GalleryStats GalleryStore::stats() const {
  GalleryStats st;
  Statement src(db_,
                "SELECT count(*), coalesce(sum(state = 'done'), 0), coalesce(sum(frames_indexed), 0), "
                "coalesce(sum(frames_failed), 0) FROM sources",
                path_);
  src.step();
  st.sources = src.integer(0);
  st.sources_done = src.integer(1);
  st.frames_indexed = src.integer(2);
  st.frames_failed = src.integer(3);
  Statement per(db_,
                "SELECT s.camera, count(d.id) FROM sources s LEFT JOIN detections d ON d.source_id = s.id "
                "GROUP BY s.camera ORDER BY s.camera",
                path_);
  while (per.step()) {
    st.detections_per_camera.emplace_back(per.text(0), per.integer(1));
    st.detections += per.integer(1);
  }
  return st;
}


}  // namespace psearch::gallery
