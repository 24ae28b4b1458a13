/* SPDX-License-Identifier: MIT */
/*
 * Linked against by libgpubox-nvml.so only so that it records a
 * dependency on "libgpubox-nvml-real.so": the name under which the agent
 * binds the real libnvidia-ml.so.<version> into a container.  Never
 * installed; never loaded.
 */
int gpubox_nvml_real_stub(void);

int gpubox_nvml_real_stub(void)
{
	return 0;
}
