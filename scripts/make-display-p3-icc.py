#!/usr/bin/env python3
"""Writes a Display P3 ICC profile (DCI-P3 primaries, D65 white, the sRGB tone curve) with
Little CMS (liblcms2, through ctypes): the published primaries and curve, nothing else.

    python3 make-display-p3-icc.py OUT.icc
"""
import ctypes, ctypes.util, sys

lcms = ctypes.CDLL(ctypes.util.find_library("lcms2") or "liblcms2.so.2")

class xyY(ctypes.Structure):
    _fields_ = [("x", ctypes.c_double), ("y", ctypes.c_double), ("Y", ctypes.c_double)]

class Triple(ctypes.Structure):
    _fields_ = [("Red", xyY), ("Green", xyY), ("Blue", xyY)]

lcms.cmsBuildParametricToneCurve.restype = ctypes.c_void_p
lcms.cmsBuildParametricToneCurve.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_double)]
lcms.cmsCreateRGBProfile.restype = ctypes.c_void_p
lcms.cmsCreateRGBProfile.argtypes = [ctypes.POINTER(xyY), ctypes.POINTER(Triple), ctypes.c_void_p * 3]
lcms.cmsSaveProfileToFile.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
lcms.cmsMLUalloc.restype = ctypes.c_void_p
lcms.cmsMLUalloc.argtypes = [ctypes.c_void_p, ctypes.c_uint]
lcms.cmsMLUsetASCII.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p]
lcms.cmsWriteTag.argtypes = [ctypes.c_void_p, ctypes.c_uint, ctypes.c_void_p]

# IEC 61966-2-1 (sRGB) curve as ICC parametric type 4: Y = (aX+b)^g for X >= d, else cX.
params = (ctypes.c_double * 5)(2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045)
curve = lcms.cmsBuildParametricToneCurve(None, 4, params)
white = xyY(0.3127, 0.3290, 1.0)  # D65
# Display P3 (SMPTE EG 432-1 primaries).
primaries = Triple(xyY(0.680, 0.320, 1.0), xyY(0.265, 0.690, 1.0), xyY(0.150, 0.060, 1.0))
profile = lcms.cmsCreateRGBProfile(ctypes.byref(white), ctypes.byref(primaries), (ctypes.c_void_p * 3)(curve, curve, curve))
for tag, text in ((0x64657363, b"Display P3 (imgserv test fixture)"), (0x63707274, b"No copyright, use freely")):
    mlu = lcms.cmsMLUalloc(None, 1)
    lcms.cmsMLUsetASCII(mlu, b"en", b"US", text)
    lcms.cmsWriteTag(profile, tag, mlu)
assert lcms.cmsSaveProfileToFile(profile, sys.argv[1].encode())
