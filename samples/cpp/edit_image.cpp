// leed_edit_image EXPORT_DIR FACE_CROP.png REF_CROP.png ALPHA OUT.png [--raw OUT.bin]
//
// Edits an aligned face crop toward the expression of an aligned reference crop. --raw also
// writes the graph's float output (float32, NCHW 1 x 3 x H x W, native byte order, no header)
// so it can be compared with another runtime without 8-bit rounding.
#include "cli.hpp"
#include "leed_host.hpp"

#include <opencv2/imgcodecs.hpp>

#include <cstring>
#include <fstream>
#include <iostream>
#include <string>

namespace {

cv::Mat read_crop(const std::string& path) {
    cv::Mat image = cv::imread(path, cv::IMREAD_COLOR);
    if (image.empty()) throw leed::Error(path + ": cannot read it as an image");
    return image;
}

void write_raw(const std::string& path, const cv::Mat& blob) {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(blob.ptr<float>()), static_cast<std::streamsize>(blob.total() * sizeof(float)));
    if (!out) throw leed::Error(path + ": cannot write it");
}

}  // namespace

int main(int argc, char** argv) {
    const bool raw = argc == 8 && std::strcmp(argv[6], "--raw") == 0;
    if (argc != 6 && !raw) {
        std::cerr << "usage: " << argv[0] << " EXPORT_DIR FACE_CROP.png REF_CROP.png ALPHA OUT.png [--raw OUT.bin]\n";
        return 2;
    }
    try {
        const float alpha = leed::parse_arg<float>(argv[4], "ALPHA");
        leed::LeedHost host(argv[1]);
        const cv::Mat dexp = host.reference_code(read_crop(argv[3]));
        const cv::Mat edited = host.edit_blob(read_crop(argv[2]), dexp, alpha);
        if (!cv::imwrite(argv[5], host.to_image(edited))) throw leed::Error(std::string(argv[5]) + ": cannot write it");
        if (raw) write_raw(argv[7], edited);
        std::cout << "wrote " << argv[5] << (raw ? std::string(" and ") + argv[7] : "") << "\n";
    } catch (const std::exception& e) {
        std::cerr << argv[0] << ": error: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
