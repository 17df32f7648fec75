#include "leed_host.hpp"

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace leed {
namespace {

std::string shape_str(const std::vector<int>& shape) {
    std::ostringstream s;
    s << "[";
    for (size_t i = 0; i < shape.size(); ++i) s << (i ? ", " : "") << (shape[i] < 0 ? "batch" : std::to_string(shape[i]));
    s << "]";
    return s.str();
}

std::vector<TensorSpec> read_specs(const json& list) {
    std::vector<TensorSpec> specs;
    for (const auto& t : list) {
        if (t.at("dtype") != "float32")
            throw Error("tensor '" + t.at("name").get<std::string>() + "' is " + t.at("dtype").get<std::string>() +
                        "; this sample feeds float32 only");
        TensorSpec spec{t.at("name").get<std::string>(), {}};
        for (const auto& d : t.at("shape")) spec.shape.push_back(d.is_number_integer() ? d.get<int>() : -1);
        specs.push_back(std::move(spec));
    }
    return specs;
}

std::vector<std::string> names(const std::vector<TensorSpec>& specs) {
    std::vector<std::string> out;
    for (const auto& s : specs) out.push_back(s.name);
    return out;
}

std::string join(const std::vector<std::string>& items) {
    std::string out;
    for (const auto& s : items) out += (out.empty() ? "" : ", ") + s;
    return out;
}

// Reads artifact `name` of the manifest (its OpenCV variant `name.opencv` when there is one)
// and loads its graph with OpenCV's ONNX importer. `inputs` lists the accepted input lists.
Graph load_graph(const fs::path& dir, const json& manifest, const std::string& name,
                 const std::vector<std::vector<std::string>>& inputs, const std::vector<std::string>& outputs) {
    const fs::path manifest_path = dir / "manifest.json";
    const auto& artifacts = manifest.at("artifacts");
    const std::string key = artifacts.contains(name + ".opencv") ? name + ".opencv" : name;
    if (!artifacts.contains(key))
        throw Error(manifest_path.string() + ": no artifact '" + name + "'; re-run leed-export");
    const auto& a = artifacts.at(key);
    Graph g{a.at("file").get<std::string>(), read_specs(a.at("inputs")), read_specs(a.at("outputs")), {}};
    const std::string where = manifest_path.string() + ": artifact '" + key + "' ";
    if (a.at("format") != "onnx" || a.at("precision") != "fp32")
        throw Error(where + "is " + a.at("precision").get<std::string>() + " " + a.at("format").get<std::string>() +
                    "; OpenCV's DNN module loads FP32 ONNX graphs only");
    bool known = false;
    for (const auto& want : inputs) known = known || names(g.inputs) == want;
    if (!known || names(g.outputs) != outputs)
        throw Error(where + "has inputs (" + join(names(g.inputs)) + ") and outputs (" + join(names(g.outputs)) +
                    "), expected (" + join(inputs.front()) + ") and (" + join(outputs) + ")");
    const fs::path path = dir / g.file;
    if (!fs::is_regular_file(path)) throw Error(path.string() + ": missing (" + where + "); re-run leed-export");
    try {
        g.net = cv::dnn::readNetFromONNX(path.string());
    } catch (const cv::Exception& e) {
        throw Error(path.string() + ": OpenCV " CV_VERSION " cannot load it (export the OpenCV variant): " + e.what());
    }
    return g;
}

}  // namespace

LeedHost::LeedHost(const std::string& export_dir) : dir_(export_dir) {
    const fs::path dir(export_dir);
    const fs::path path = dir / "manifest.json";
    if (!fs::is_directory(dir))
        throw Error(export_dir + ": no such export folder; create one with `leed-export RUN_DIR --out " + export_dir +
                    "`");
    std::ifstream in(path);
    if (!in) throw Error(path.string() + ": missing; " + export_dir + " is not an export folder (run leed-export)");
    try {
        const json m = json::parse(in);
        if (m.at("schema") != 1) throw Error(path.string() + ": schema is not 1; re-export with this leed version");
        const auto& image = m.at("image");
        size_ = image.at("size").get<int>();
        const std::string color = image.at("color"), layout = image.at("layout"), dtype = image.at("dtype");
        if (layout != "NCHW" || dtype != "float32" || (color != "RGB" && color != "BGR"))
            throw Error(path.string() + ": image is " + layout + " " + color + " " + dtype +
                        "; this sample handles NCHW float32 RGB or BGR");
        rgb_ = color == "RGB";
        lo_ = image.at("range").at(0).get<float>();
        hi_ = image.at("range").at(1).get<float>();
        reference_ = load_graph(dir, m, "reference", {{"reference"}}, {"dexp"});
        edit_ = load_graph(dir, m, "edit", {{"face", "dexp", "alpha"}, {"face", "dexp"}}, {"edited"});
    } catch (const json::exception& e) {
        throw Error(path.string() + ": corrupt manifest (" + e.what() + "); re-run leed-export");
    }
}

cv::Mat LeedHost::to_blob(const cv::Mat& crop_bgr) const {
    if (crop_bgr.type() != CV_8UC3 || crop_bgr.rows != size_ || crop_bgr.cols != size_)
        throw Error("crop is " + std::to_string(crop_bgr.cols) + "x" + std::to_string(crop_bgr.rows) + " with " +
                    std::to_string(crop_bgr.channels()) + " channel(s) of depth " + std::to_string(crop_bgr.depth()) +
                    "; the export wants " + std::to_string(size_) + "x" + std::to_string(size_) +
                    " 8-bit BGR (align it with leed_runtime.face.align.crop_face)");
    // blobFromImage computes (pixel - mean) * scale: maps 0..255 onto [lo, hi].
    const double scale = (hi_ - lo_) / 255.0;
    const double mean = -lo_ / scale;
    return cv::dnn::blobFromImage(crop_bgr, scale, cv::Size(), cv::Scalar::all(mean), rgb_, false, CV_32F);
}

cv::Mat LeedHost::to_image(const cv::Mat& blob) const {
    // Each channel plane of the 1 x 3 x H x W blob, mapped from [lo, hi] back to 0..255.
    const int h = blob.size[2], w = blob.size[3];
    std::vector<cv::Mat> planes(3);
    for (int c = 0; c < 3; ++c) {
        const cv::Mat plane(h, w, CV_32F, const_cast<float*>(blob.ptr<float>(0, c)));
        plane.convertTo(planes[rgb_ ? 2 - c : c], CV_8U, 255.0 / (hi_ - lo_), -lo_ * 255.0 / (hi_ - lo_));
    }
    cv::Mat image;
    cv::merge(planes, image);
    return image;
}

void LeedHost::check_blob(const Graph& graph, const TensorSpec& spec, const cv::Mat& blob) const {
    bool ok = blob.dims == static_cast<int>(spec.shape.size()) && blob.type() == CV_32F;
    for (int i = 0; ok && i < blob.dims; ++i) ok = spec.shape[i] < 0 || spec.shape[i] == blob.size[i];
    if (!ok) {
        std::vector<int> got(blob.size.p, blob.size.p + blob.dims);
        throw Error(graph.file + ": input '" + spec.name + "' must be float32 " + shape_str(spec.shape) + ", got " +
                    shape_str(got));
    }
}

cv::Mat LeedHost::forward(Graph& graph, const std::vector<cv::Mat>& feeds) {
    // Inputs and outputs are bound by name (the manifest's), never by position.
    for (size_t i = 0; i < feeds.size(); ++i) graph.net.setInput(feeds[i], graph.inputs[i].name);
    return graph.net.forward(graph.outputs[0].name).clone();  // forward()'s Mat is reused by the next call
}

cv::Mat LeedHost::reference_code(const cv::Mat& ref_crop_bgr) {
    return forward(reference_, {to_blob(ref_crop_bgr)});
}

cv::Mat LeedHost::edit_blob(const cv::Mat& face_crop_bgr, const cv::Mat& dexp, float alpha) {
    check_blob(edit_, edit_.inputs[1], dexp);
    if (edit_.inputs.size() == 2)  // the OpenCV variant: alpha * dexp is computed here
        return forward(edit_, {to_blob(face_crop_bgr), dexp * alpha});
    // alpha is one value per batch item; OpenCV holds a 1-D [1] tensor as a 1 x 1 Mat.
    const cv::Mat alpha_blob(1, 1, CV_32F, cv::Scalar(alpha));
    return forward(edit_, {to_blob(face_crop_bgr), dexp, alpha_blob});
}

cv::Mat LeedHost::edit(const cv::Mat& face_crop_bgr, const cv::Mat& dexp, float alpha) {
    return to_image(edit_blob(face_crop_bgr, dexp, alpha));
}

}  // namespace leed
