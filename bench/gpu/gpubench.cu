// SPDX-License-Identifier: MIT
/*
 * bench/gpu: what a container costs a GPU program, against the host.
 * Built on the GPU server with its own nvcc (bench/gpu/build), never by
 * meson.  Modes:
 *   gpubench matmul [N [ITERS]]   bf16 N x N x N matrix products through
 *                                 cuBLAS (fp32 accumulation): "tflops X"
 *   gpubench h2d [MIB [ITERS]]    pinned host-to-device copies: "gbps X"
 *   gpubench hold SECONDS         a CUDA job: memory taken, a kernel run,
 *                                 then held until the time is up
 * Each figure is timed with CUDA events after warm-up runs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#define CHECK(call)                                                                      \
	do {                                                                             \
		cudaError_t e_ = (call);                                                 \
		if (e_ != cudaSuccess) {                                                 \
			fprintf(stderr, "gpubench: %s: %s\n", #call, cudaGetErrorString(e_)); \
			exit(1);                                                         \
		}                                                                        \
	} while (0)

__global__ void fill(__nv_bfloat16 *p, size_t n, float v)
{
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
	     i += (size_t)gridDim.x * blockDim.x)
		p[i] = __float2bfloat16(v * (float)((i % 17) + 1) / 17.0f);
}

static int matmul(int n, int iters)
{
	size_t count = (size_t)n * n;
	__nv_bfloat16 *a, *b, *c;
	float alpha = 1.0f, beta = 0.0f, ms;
	cublasHandle_t h;
	cudaEvent_t t0, t1;

	CHECK(cudaMalloc(&a, count * sizeof(*a)));
	CHECK(cudaMalloc(&b, count * sizeof(*b)));
	CHECK(cudaMalloc(&c, count * sizeof(*c)));
	fill<<<1024, 256>>>(a, count, 0.5f);
	fill<<<1024, 256>>>(b, count, 0.25f);
	if (cublasCreate(&h) != CUBLAS_STATUS_SUCCESS) {
		fprintf(stderr, "gpubench: cublasCreate failed\n");
		return 1;
	}
	CHECK(cudaEventCreate(&t0));
	CHECK(cudaEventCreate(&t1));
	for (int i = -3; i < iters; i++) {
		if (i == 0)
			CHECK(cudaEventRecord(t0));
		if (cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &alpha, a, CUDA_R_16BF, n,
				 b, CUDA_R_16BF, n, &beta, c, CUDA_R_16BF, n, CUBLAS_COMPUTE_32F,
				 CUBLAS_GEMM_DEFAULT) != CUBLAS_STATUS_SUCCESS) {
			fprintf(stderr, "gpubench: cublasGemmEx failed\n");
			return 1;
		}
	}
	CHECK(cudaEventRecord(t1));
	CHECK(cudaEventSynchronize(t1));
	CHECK(cudaEventElapsedTime(&ms, t0, t1));
	printf("tflops %.1f\n", 2.0 * n * (double)n * n * iters / (ms / 1e3) / 1e12);
	cublasDestroy(h);
	return 0;
}

static int h2d(size_t mib, int iters)
{
	size_t bytes = mib << 20;
	void *host, *dev;
	cudaEvent_t t0, t1;
	float ms;

	CHECK(cudaMallocHost(&host, bytes));
	CHECK(cudaMalloc(&dev, bytes));
	memset(host, 1, bytes);
	CHECK(cudaEventCreate(&t0));
	CHECK(cudaEventCreate(&t1));
	for (int i = -2; i < iters; i++) {
		if (i == 0)
			CHECK(cudaEventRecord(t0));
		CHECK(cudaMemcpyAsync(dev, host, bytes, cudaMemcpyHostToDevice));
	}
	CHECK(cudaEventRecord(t1));
	CHECK(cudaEventSynchronize(t1));
	CHECK(cudaEventElapsedTime(&ms, t0, t1));
	printf("gbps %.2f\n", (double)bytes * iters / (ms / 1e3) / 1e9);
	return 0;
}

static int hold(int seconds)
{
	__nv_bfloat16 *p;
	size_t count = 128u << 20;

	CHECK(cudaMalloc(&p, count * sizeof(*p)));
	fill<<<1024, 256>>>(p, count, 1.0f);
	CHECK(cudaDeviceSynchronize());
	printf("holding %zu MiB on the GPU as pid %d for %d s\n", (count * sizeof(*p)) >> 20,
	       (int)getpid(), seconds);
	fflush(stdout);
	sleep(seconds);
	return 0;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";

	if (!strcmp(mode, "matmul"))
		return matmul(argc > 2 ? atoi(argv[2]) : 8192, argc > 3 ? atoi(argv[3]) : 50);
	if (!strcmp(mode, "h2d"))
		return h2d(argc > 2 ? (size_t)atoi(argv[2]) : 1024, argc > 3 ? atoi(argv[3]) : 10);
	if (!strcmp(mode, "hold"))
		return hold(argc > 2 ? atoi(argv[2]) : 60);
	fprintf(stderr, "usage: gpubench matmul [N [ITERS]] | h2d [MIB [ITERS]] | hold SECONDS\n");
	return 2;
}
