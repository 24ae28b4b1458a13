#!/usr/bin/env python3
# A client of NVML written as pynvml is, for t0075-nvml-inside.sh: ctypes
# loads libnvidia-ml.so.1 by its soname, and the running processes come
# from nvmlDeviceGetComputeRunningProcesses_v3 by pynvml's two calls (a
# count of 0, then a buffer of twice the count asked for plus 5).
#   nvml_client.py GPU...
# prints for each GPU index:
#   py_compute GPU rc=RC pids=PID/MEM,...
#   py_signal GPU ok|PID...       (the pids os.kill(pid, 0) cannot reach)
import ctypes
import os
import sys

NVML_SUCCESS = 0
NVML_ERROR_INSUFFICIENT_SIZE = 7


class c_nvmlProcessInfo_t(ctypes.Structure):
    _fields_ = [("pid", ctypes.c_uint), ("usedGpuMemory", ctypes.c_ulonglong),
                ("gpuInstanceId", ctypes.c_uint), ("computeInstanceId", ctypes.c_uint)]


assert ctypes.sizeof(c_nvmlProcessInfo_t) == 24
nvml = ctypes.CDLL("libnvidia-ml.so.1")


def function(name):
    f = getattr(nvml, name)
    f.restype = ctypes.c_int
    return f


def running_processes(handle):
    get = function("nvmlDeviceGetComputeRunningProcesses_v3")
    count = ctypes.c_uint(0)
    rc = get(handle, ctypes.byref(count), None)
    if rc != NVML_ERROR_INSUFFICIENT_SIZE:
        return rc, []
    count.value = count.value * 2 + 5
    buf = (c_nvmlProcessInfo_t * count.value)()
    rc = get(handle, ctypes.byref(count), buf)
    return rc, (buf[:count.value] if rc == NVML_SUCCESS else [])


def unreachable(pid):
    try:
        os.kill(pid, 0)
        return False
    except OSError:
        return True


rc = function("nvmlInit_v2")()
if rc != NVML_SUCCESS:
    print("init rc=%d" % rc)
    sys.exit(1)
for index in map(int, sys.argv[1:]):
    handle = ctypes.c_void_p()
    rc = function("nvmlDeviceGetHandleByIndex_v2")(ctypes.c_uint(index), ctypes.byref(handle))
    procs = []
    if rc == NVML_SUCCESS:
        rc, procs = running_processes(handle)
    print("py_compute %d rc=%d pids=%s" % (index, rc, ",".join(
        "%d/%d" % (p.pid, p.usedGpuMemory) for p in procs)))
    lost = [str(p.pid) for p in procs if unreachable(p.pid)]
    print("py_signal %d %s" % (index, " ".join(lost) if lost else "ok"))
function("nvmlShutdown")()
