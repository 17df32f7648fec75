// leed_edit_video EXPORT_DIR IN_VIDEO REF_CROP.png ALPHA OUT_VIDEO X Y SIZE
//
// Edits a fixed SIZE x SIZE box at (X, Y) of every frame toward the expression of an aligned
// reference crop: crop, resize to the export's crop size, edit, resize back, paste through a
// feathered elliptical mask. It does not detect or track faces (the Python runtime does):
// put the box on an aligned-looking face. OUT_VIDEO is written by cv::VideoWriter with the
// MJPG codec for .avi and mp4v (MPEG-4 Part 2) otherwise, at the input's frame rate; no audio.
#include "cli.hpp"
#include "leed_host.hpp"

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>

#include <chrono>
#include <iostream>
#include <string>

namespace {

// 1 inside an ellipse inscribed in the box, falling smoothly to 0 at its border.
cv::Mat feathered_ellipse(int size) {
    cv::Mat mask = cv::Mat::zeros(size, size, CV_32F);
    const int feather = std::max(1, size / 12);
    cv::ellipse(mask, cv::Point(size / 2, size / 2), cv::Size(size / 2 - 2 * feather, size / 2 - 2 * feather), 0, 0,
                360, cv::Scalar(1.0), cv::FILLED, cv::LINE_AA);
    cv::GaussianBlur(mask, mask, cv::Size(), feather);
    return mask;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 9) {
        std::cerr << "usage: " << argv[0] << " EXPORT_DIR IN_VIDEO REF_CROP.png ALPHA OUT_VIDEO X Y SIZE\n";
        return 2;
    }
    using clock = std::chrono::steady_clock;
    try {
        const std::string in_path = argv[2], ref_path = argv[3], out_path = argv[5];
        const float alpha = leed::parse_arg<float>(argv[4], "ALPHA");
        const int side = leed::parse_arg<int>(argv[8], "SIZE");
        const cv::Rect box(leed::parse_arg<int>(argv[6], "X"), leed::parse_arg<int>(argv[7], "Y"), side, side);

        leed::LeedHost host(argv[1]);
        const cv::Mat ref = cv::imread(ref_path, cv::IMREAD_COLOR);
        if (ref.empty()) throw leed::Error(ref_path + ": cannot read it as an image");
        const cv::Mat dexp = host.reference_code(ref);

        cv::VideoCapture cap(in_path);
        if (!cap.isOpened()) throw leed::Error(in_path + ": cannot open it as a video");
        const double fps = cap.get(cv::CAP_PROP_FPS);
        const cv::Size frame_size(static_cast<int>(cap.get(cv::CAP_PROP_FRAME_WIDTH)),
                                  static_cast<int>(cap.get(cv::CAP_PROP_FRAME_HEIGHT)));
        if (box.width <= 0 || (box & cv::Rect(cv::Point(), frame_size)) != box)
            throw leed::Error("box X Y SIZE = " + std::to_string(box.x) + " " + std::to_string(box.y) + " " +
                              std::to_string(box.width) + " is not inside the " + std::to_string(frame_size.width) +
                              "x" + std::to_string(frame_size.height) + " frames of " + in_path);
        const bool avi = out_path.size() >= 4 && out_path.compare(out_path.size() - 4, 4, ".avi") == 0;
        const int fourcc = avi ? cv::VideoWriter::fourcc('M', 'J', 'P', 'G') : cv::VideoWriter::fourcc('m', 'p', '4', 'v');
        cv::VideoWriter writer(out_path, fourcc, fps > 0 ? fps : 30.0, frame_size);
        if (!writer.isOpened()) throw leed::Error(out_path + ": cannot open it for writing (" + (avi ? "MJPG" : "mp4v") + ")");

        const cv::Mat mask = feathered_ellipse(box.width), inverse = 1.0 - mask;
        const cv::Size crop(host.crop_size(), host.crop_size());
        const int down = box.width > crop.width ? cv::INTER_AREA : cv::INTER_LINEAR;
        cv::Mat frame, small, edited, big;
        double edit_ms = 0.0;
        int frames = 0;
        const auto start = clock::now();
        while (cap.read(frame)) {
            cv::Mat region = frame(box);
            cv::resize(region, small, crop, 0, 0, down);
            const auto t0 = clock::now();
            edited = host.edit(small, dexp, alpha);
            edit_ms += std::chrono::duration<double, std::milli>(clock::now() - t0).count();
            cv::resize(edited, big, box.size(), 0, 0, cv::INTER_LINEAR);
            cv::blendLinear(big, region, mask, inverse, region);  // writes into the frame
            writer.write(frame);
            ++frames;
        }
        if (frames == 0) throw leed::Error(in_path + ": no frames could be decoded");
        const double total_ms = std::chrono::duration<double, std::milli>(clock::now() - start).count();
        std::cout << "wrote " << out_path << " (" << (avi ? "MJPG" : "mp4v") << ", " << fps << " fps): " << frames
                  << " frames, " << edit_ms / frames << " ms/frame edit, " << total_ms / frames
                  << " ms/frame with decode, resize, paste and encode\n";
    } catch (const std::exception& e) {
        std::cerr << argv[0] << ": error: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
