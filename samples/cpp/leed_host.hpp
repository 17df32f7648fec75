// LeedHost: the two fused graphs of a leed export folder (reference.onnx, edit.onnx) run
// with OpenCV's DNN module, described by the folder's manifest.json.
//
//   leed::LeedHost host("export");                      // reads manifest.json, loads both graphs
//   cv::Mat dexp = host.reference_code(ref_crop_bgr);   // 1 x C x 8 x 8 float blob
//   cv::Mat out  = host.edit(face_crop_bgr, dexp, 1.0f); // 128 x 128 BGR uint8 crop
//
// Crops are aligned faces as leed_runtime.face.align.crop_face makes them: size x size, BGR
// (OpenCV's order), 8-bit. Every problem is thrown as leed::Error with a one-line message.
#pragma once

#include <opencv2/dnn.hpp>

#include <stdexcept>
#include <string>
#include <vector>

namespace leed {

struct Error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// One graph input or output as the manifest describes it; -1 marks a dynamic (named) axis.
struct TensorSpec {
    std::string name;
    std::vector<int> shape;
};

// One graph: its file, its inputs and outputs in the manifest's order, and the loaded net.
struct Graph {
    std::string file;
    std::vector<TensorSpec> inputs;
    std::vector<TensorSpec> outputs;
    cv::dnn::Net net;
};

class LeedHost {
public:
    explicit LeedHost(const std::string& export_dir);

    int crop_size() const { return size_; }

    // Expression code of a reference crop: a 1 x C x S x S float blob ("dexp").
    cv::Mat reference_code(const cv::Mat& ref_crop_bgr);

    // The face crop edited toward `dexp` by `alpha` (0: unchanged expression, 1: the
    // reference's): a BGR uint8 crop of the input's size.
    cv::Mat edit(const cv::Mat& face_crop_bgr, const cv::Mat& dexp, float alpha);

    // The same as edit() before conversion to 8 bits: the graph's 1 x 3 x H x W float output.
    cv::Mat edit_blob(const cv::Mat& face_crop_bgr, const cv::Mat& dexp, float alpha);

    // Crop (BGR uint8) <-> graph image (1 x 3 x H x W float, the manifest's color and range).
    cv::Mat to_blob(const cv::Mat& crop_bgr) const;
    cv::Mat to_image(const cv::Mat& blob) const;

private:
    cv::Mat forward(Graph& graph, const std::vector<cv::Mat>& feeds);
    void check_blob(const Graph& graph, const TensorSpec& spec, const cv::Mat& blob) const;

    std::string dir_;
    int size_ = 0;
    bool rgb_ = true;
    float lo_ = -1.f, hi_ = 1.f;
    Graph reference_;
    Graph edit_;
};

}  // namespace leed
