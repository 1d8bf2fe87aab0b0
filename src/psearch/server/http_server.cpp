#include "psearch/server/http_server.h"

#include <httplib.h>

#include <iostream>

namespace psearch::server {
namespace {

void send_json(httplib::Response& res, const nlohmann::json& body, int status = 200) {
  res.status = status;
  res.set_content(body.dump(), "application/json");
}

void send_error(httplib::Response& res, int status, const std::string& message) {
  send_json(res, {{"error", message}}, status);
}

void send_jpeg(httplib::Response& res, const std::vector<unsigned char>& bytes) {
  res.set_content(reinterpret_cast<const char*>(bytes.data()), bytes.size(), "image/jpeg");
  res.set_header("Cache-Control", "max-age=3600");  // a stored detection never changes
}

int64_t number(const httplib::Request& req, size_t i) { return std::stoll(req.matches[i].str()); }

/// Runs a handler, turning the service's exceptions into status codes.
httplib::Server::Handler guarded(std::function<void(const httplib::Request&, httplib::Response&)> handler) {
  return [handler](const httplib::Request& req, httplib::Response& res) {
    try {
      handler(req, res);
    } catch (const BadRequest& e) {
      send_error(res, 400, e.what());
    } catch (const NotFound& e) {
      send_error(res, 404, e.what());
    } catch (const nlohmann::json::exception& e) {
      send_error(res, 400, std::string("request: ") + e.what());
    } catch (const std::out_of_range& e) {
      send_error(res, 404, "number out of range");
    } catch (const std::exception& e) {
      send_error(res, 500, e.what());
    }
  };
}

}  // namespace

void serve(SearchService& service, const ServeOptions& options,
           const std::function<void(const std::string&)>& on_listening) {
  httplib::Server server;
  const int workers = options.workers;
  server.new_task_queue = [workers] { return new httplib::ThreadPool(static_cast<size_t>(workers)); };
  server.set_payload_max_length(options.max_upload_bytes);
  server.set_error_handler([&options](const httplib::Request&, httplib::Response& res) {
    if (!res.body.empty()) return;  // a handler's own JSON error
    if (res.status == 413)
      send_error(res, 413, "request body above the " + std::to_string(options.max_upload_bytes >> 20) + " MB limit");
    else if (res.status == 404)
      send_error(res, 404, "no such route");
    else
      send_error(res, res.status, "request failed");
  });

  server.Get("/", [](const httplib::Request&, httplib::Response& res) { res.set_content(web_page(), "text/html"); });
  server.Get("/api/health", guarded([&](const auto&, auto& res) { send_json(res, service.health()); }));
  server.Get("/api/stats", guarded([&](const auto&, auto& res) { send_json(res, service.stats()); }));
  server.Post("/api/search", guarded([&](const auto& req, auto& res) {
                nlohmann::json request;
                try {
                  request = nlohmann::json::parse(req.body);
                } catch (const nlohmann::json::parse_error& e) {
                  throw BadRequest(std::string("request body: not JSON (") + e.what() + ")");
                }
                send_json(res, service.search(request));
              }));
  server.Get(R"(/api/detections/(\d+)/crop\.jpg)",
             guarded([&](const auto& req, auto& res) { send_jpeg(res, service.detection_jpeg(number(req, 1), false)); }));
  server.Get(R"(/api/detections/(\d+)/frame\.jpg)",
             guarded([&](const auto& req, auto& res) { send_jpeg(res, service.detection_jpeg(number(req, 1), true)); }));
  server.Get(R"(/api/sources/(\d+)/frames)",
             guarded([&](const auto& req, auto& res) { send_json(res, service.source_frames(number(req, 1))); }));
  server.Get(R"(/api/sources/(\d+)/frames/(\d+))", guarded([&](const auto& req, auto& res) {
               send_json(res, service.frame_detections(number(req, 1), number(req, 2)));
             }));
  server.Get(R"(/api/sources/(\d+)/frames/(\d+)\.jpg)", guarded([&](const auto& req, auto& res) {
               send_jpeg(res, service.frame_jpeg(number(req, 1), number(req, 2)));
             }));

  const int port = options.port == 0 ? server.bind_to_any_port(options.host)
                                     : (server.bind_to_port(options.host, options.port) ? options.port : -1);
  if (port < 0)
    throw std::runtime_error(options.host + ":" + std::to_string(options.port) +
                             ": cannot listen there (in use, or not an address of this machine)");
  on_listening("http://" + options.host + ":" + std::to_string(port) + "/");
  server.listen_after_bind();
}

}  // namespace psearch::server
