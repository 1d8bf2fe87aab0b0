#pragma once
/// `psearch serve`: the HTTP JSON API and web page over a SearchService, with cpp-httplib
/// (Debian's libcpp-httplib-dev).
///
///   GET  /                                   the web page
///   GET  /api/health                         {"status": "ok", "detections": N, "model": ...}
///   GET  /api/stats                          model, sources, detections per camera
///   POST /api/search                         body: SearchService::search's request; {"query", "hits"}
///   GET  /api/detections/{id}/crop.jpg       a detection's region, box drawn
///   GET  /api/detections/{id}/frame.jpg      its whole frame, box drawn
///   GET  /api/sources/{id}/frames            [[frame, detections], ...]
///   GET  /api/sources/{id}/frames/{f}        the detections of that frame
///   GET  /api/sources/{id}/frames/{f}.jpg    the frame
///
/// Errors are JSON {"error": "one line"}: 400 (malformed JSON, not an image, a box outside
/// the image), 404 (unknown id or route), 413 (body above the upload limit), 500.
#include <cstddef>
#include <functional>
#include <string>

#include "psearch/server/search_service.h"

namespace psearch::server {

struct ServeOptions {
  std::string host = "127.0.0.1";  ///< loopback only unless told otherwise
  int port = 8080;                 ///< 0: any free port
  size_t max_upload_bytes = 16u << 20;
  int workers = 8;  ///< request threads
};

/// Serves until the process is stopped. Calls `on_listening(url)` once the socket is bound
/// (the CLI prints it). Throws a one-line error when the address cannot be bound.
void serve(SearchService& service, const ServeOptions& options, const std::function<void(const std::string&)>& on_listening);

/// The web page (server/web/index.html, compiled in).
const char* web_page();

}  // namespace psearch::server
