// Translation unit that carries the shared precompiled LibTorch header (see core/CMakeLists.txt).
