// The HTML run report (see report.h).
#include "observe/report.h"

#include <algorithm>
#include <ctime>
#include <optional>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "speculators/error.h"
#include "speculators/log.h"
#include "speculators/text/html.h"

namespace fs = std::filesystem;

namespace speculators {

namespace {

// The page's script: builds one <svg> per chart from the embedded lines. Each plotted series is
// a <path class="series" data-key=... data-points=N>; validation series also get a <circle> per
// point (one point per epoch).
const char* kScript = R"JS(
const CHARTS = [
  {id: 'loss', title: 'Loss', match: k => k === 'train/loss' || k === 'val/loss_epoch'},
  {id: 'acc', title: 'Per-step acceptance full_acc_k', match: k => /^(train\/full_acc_\d+|val\/full_acc_\d+_epoch)$/.test(k)},
  {id: 'tau', title: 'Estimated acceptance length', match: k => k === 'train/acceptance_length' || k === 'val/acceptance_length_epoch'},
  {id: 'lr', title: 'Learning rate', match: k => k === 'lr' || k.startsWith('lr/')},
  {id: 'tps', title: 'Tokens/s', match: k => k === 'profile/tokens_per_s'},
];
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];
const NS = 'http://www.w3.org/2000/svg';
function el(name, attrs, parent) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
}
function fmt(v) { return Math.abs(v) >= 1e4 || (Math.abs(v) < 1e-2 && v !== 0) ? v.toExponential(2) : +v.toPrecision(4); }
function draw(chart, lines, root) {
  const series = {};
  for (const line of lines) {
    if (typeof line.global_step !== 'number') continue;
    for (const [k, v] of Object.entries(line)) {
      if (!chart.match(k) || typeof v !== 'number' || !isFinite(v)) continue;
      (series[k] = series[k] || []).push([line.global_step, v]);
    }
  }
  const section = document.createElement('section');
  section.className = 'chart';
  section.id = 'chart-' + chart.id;
  const h = document.createElement('h2');
  h.textContent = chart.title;
  section.appendChild(h);
  root.appendChild(section);
  const keys = Object.keys(series).sort();
  if (!keys.length) { const p = document.createElement('p'); p.className = 'empty'; p.textContent = 'no data'; section.appendChild(p); return; }
  const W = 720, H = 280, L = 70, R = 180, T = 10, B = 30;
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (const k of keys) for (const [x, y] of series[k]) { x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y); }
  if (x1 === x0) x1 = x0 + 1;
  if (y1 === y0) { y1 += Math.abs(y1) * 0.05 || 1; y0 -= Math.abs(y0) * 0.05 || 1; }
  const sx = x => L + (x - x0) / (x1 - x0) * (W - L - R), sy = y => H - B - (y - y0) / (y1 - y0) * (H - T - B);
  const svg = el('svg', {width: W, height: H, viewBox: `0 0 ${W} ${H}`, 'data-chart': chart.id}, section);
  el('line', {x1: L, y1: H - B, x2: W - R, y2: H - B, class: 'axis'}, svg);
  el('line', {x1: L, y1: T, x2: L, y2: H - B, class: 'axis'}, svg);
  for (const [v, y] of [[y0, H - B], [y1, T + 8]]) el('text', {x: L - 4, y, 'text-anchor': 'end', class: 'tick'}, svg).textContent = fmt(v);
  for (const [v, x] of [[x0, L], [x1, W - R]]) el('text', {x, y: H - B + 16, 'text-anchor': 'middle', class: 'tick'}, svg).textContent = fmt(v);
  el('text', {x: (L + W - R) / 2, y: H - 2, 'text-anchor': 'middle', class: 'tick'}, svg).textContent = 'step';
  keys.forEach((k, i) => {
    const pts = series[k], color = COLORS[i % COLORS.length];
    const d = pts.map(([x, y], j) => (j ? 'L' : 'M') + sx(x).toFixed(1) + ' ' + sy(y).toFixed(1)).join(' ');
    el('path', {d, class: 'series', 'data-key': k, 'data-points': pts.length, stroke: color, fill: 'none'}, svg);
    if (k.startsWith('val/')) for (const [x, y] of pts) el('circle', {cx: sx(x), cy: sy(y), r: 3, fill: color, class: 'point', 'data-key': k}, svg);
    el('rect', {x: W - R + 10, y: T + i * 16, width: 10, height: 10, fill: color}, svg);
    el('text', {x: W - R + 24, y: T + 9 + i * 16, class: 'legend'}, svg).textContent = k;
  });
}
const lines = JSON.parse(document.getElementById('metrics').textContent);
const root = document.getElementById('charts');
for (const c of CHARTS) draw(c, lines, root);
document.body.setAttribute('data-rendered', String(lines.length));
)JS";

const char* kStyle = R"CSS(
body { font: 14px sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.3em; } h2 { font-size: 1.05em; margin: 1.2em 0 0.3em; }
.axis { stroke: #888; } .tick, .legend { font-size: 11px; fill: #444; }
.series { stroke-width: 1.5; } table { border-collapse: collapse; } td { padding: 2px 10px 2px 0; }
)CSS";

// JSON inside <script type="application/json">: only "</" could end the element early.
std::string script_safe(const std::string& json) {
  std::string out;
  for (std::size_t i = 0; i < json.size(); ++i) {
    if (json[i] == '<' && i + 1 < json.size() && json[i + 1] == '/') {
      out += "<\\/";
      ++i;
    } else {
      out += json[i];
    }
  }
  return out;
}

std::string summary_rows(const std::vector<Json>& lines, const std::vector<MeasuredAcceptance>& measured) {
  std::int64_t steps = 0;
  std::optional<double> last_loss, best_val, estimate;
  for (const auto& line : lines) {
    if (line.contains("global_step") && line.at("global_step").is_int()) steps = std::max(steps, line.at("global_step").as_int() + 1);
    if (line.contains("train/loss") && line.at("train/loss").is_number()) last_loss = line.at("train/loss").as_double();
    if (line.contains("val/loss_epoch") && line.at("val/loss_epoch").is_number()) {
      const double v = line.at("val/loss_epoch").as_double();
      if (!best_val || v < *best_val) best_val = v;
    }
    if (line.contains("val/acceptance_length_epoch") && line.at("val/acceptance_length_epoch").is_number()) {
      estimate = line.at("val/acceptance_length_epoch").as_double();
    }
  }
  std::string rows = cat("<tr><td>optimizer steps</td><td>", steps, "</td></tr>");
  if (last_loss) rows += cat("<tr><td>last train loss</td><td>", *last_loss, "</td></tr>");
  if (best_val) rows += cat("<tr><td>best validation loss</td><td>", *best_val, "</td></tr>");
  if (estimate) {
    rows += cat("<tr><td>estimated acceptance length (last validation, 1 + &Sigma; full_acc_k)</td><td>", *estimate,
                "</td></tr>");
  }
  for (const auto& m : measured) {
    const Json& e = m.eval;
    rows += cat("<tr class=\"measured\"><td>measured acceptance length &tau; of checkpoint ", text::html_escape(m.checkpoint),
                " (speculators-eval: ", e.get("prompts", Json(0)).as_int(), " prompts, k = ",
                e.get("speculative_tokens", Json(0)).as_int(), ", ",
                e.get("exact_prompts", Json(0)).as_int() == e.get("prompts", Json(-1)).as_int() ? "exact" : "NOT exact",
                ")</td><td>", e.at("acceptance_length").as_double(), "</td></tr>");
  }
  return rows;
}

}  // namespace

std::vector<Json> read_metrics_jsonl(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail_usage(cat(path, ": cannot open (expected the metrics.jsonl of a training run)"));
  std::vector<Json> lines;
  std::string text;
  for (int number = 1; std::getline(in, text); ++number) {
    if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
    Json line;
    try {
      line = Json::parse(text, cat(path, ":", number));
    } catch (const Error& e) {
      fail_data(e.what());  // malformed, too deep, a number out of range: bad data, exit code 4
    }
    if (!line.is_object()) fail_data(cat(path, ":", number, ": expected a JSON object per line"));
    lines.push_back(std::move(line));
  }
  return lines;
}

std::vector<MeasuredAcceptance> read_run_evaluations(const std::string& run_dir) {
  std::vector<std::pair<std::string, fs::path>> found;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(run_dir, ec)) {
    const fs::path eval = entry.path() / "eval.json";
    if (entry.is_directory() && !entry.is_symlink() && fs::exists(eval)) {
      found.emplace_back(entry.path().filename().string(), eval);
    }
  }
  // Numeric checkpoint names in numeric order, others after them.
  auto key = [](const std::string& name) {
    const bool numeric = !name.empty() && name.find_first_not_of("0123456789") == std::string::npos;
    return std::make_pair(numeric ? 0 : 1, numeric ? std::string(20 - std::min<std::size_t>(20, name.size()), '0') + name : name);
  };
  std::sort(found.begin(), found.end(), [&](const auto& a, const auto& b) { return key(a.first) < key(b.first); });
  std::vector<MeasuredAcceptance> out;
  for (const auto& [name, path] : found) {
    try {
      Json j = Json::read_file(path.string());
      if (j.is_object() && j.contains("acceptance_length") && j.at("acceptance_length").is_number()) {
        out.push_back({name, std::move(j)});
      }
    } catch (const Error& e) {
      log::warn(cat("report: skipping ", path.string(), ": ", e.what()));
    }
  }
  return out;
}

std::string render_report_html(const std::vector<Json>& lines, const std::string& title,
                               const std::vector<MeasuredAcceptance>& measured) {
  Json array = Json::array();
  for (const auto& l : lines) array.push_back(l);
  std::time_t now = std::time(nullptr);
  char stamp[32];
  std::strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S UTC", std::gmtime(&now));
  return cat("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>", text::html_escape(title),
             "</title>\n<style>", kStyle, "</style></head>\n<body>\n<h1>", text::html_escape(title), "</h1>\n<p>", lines.size(),
             " metric lines; written ", stamp, ".</p>\n<table>", summary_rows(lines, measured), "</table>\n<div id=\"charts\"></div>\n",
             "<script type=\"application/json\" id=\"metrics\">", script_safe(array.dump()), "</script>\n<script>",
             kScript, "</script>\n</body></html>\n");
}

std::string write_run_report(const std::string& run_dir) {
  if (!fs::is_directory(run_dir)) fail_usage(cat(run_dir, ": not a directory (expected a training run's --log-dir)"));
  const auto lines = read_metrics_jsonl((fs::path(run_dir) / "metrics.jsonl").string());
  const std::string out = (fs::path(run_dir) / "report.html").string();
  write_file_atomic(out, render_report_html(lines, cat("speculators training report: ", run_dir),
                                            read_run_evaluations(run_dir)));
  return out;
}

int run_report_command(const std::vector<std::string>& args) {
  try {
    if (args.size() == 1 && (args[0] == "-h" || args[0] == "--help")) {
      std::cout << "usage: speculators-train report RUN_DIR\n  Writes RUN_DIR/report.html from RUN_DIR/metrics.jsonl "
                   "(RUN_DIR is the run's --log-dir, by default its --save-path).\n";
      return 0;
    }
    if (args.size() != 1) fail_usage("usage: speculators-train report RUN_DIR (exactly one run directory)");
    std::cout << write_run_report(args[0]) << "\n";
    return 0;
  } catch (const Error& e) {
    log::error(e.what());
    return static_cast<int>(e.code());
  }
}

}  // namespace speculators
