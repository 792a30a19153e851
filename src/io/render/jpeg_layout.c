/* The layout of libjpeg's decompressor as the C compiler sees it, for src/io/render/jpeg_rows.rs:
 * compiled by build.rs against the headers of the libjpeg that mozjpeg-sys builds and links
 * (its vendored source and the jconfig.h its build script generated, so the same ABI
 * version), and compared, entry by entry, with what Rust's offset_of! says of the structs
 * jpeg_rows reads and writes. The entries are in the order of `jpeg_rows::LAYOUT`. */
#include <stddef.h>
#include <stdio.h>
#define JPEG_INTERNALS
#include "jpeglib.h"

#define D(field) offsetof(struct jpeg_decompress_struct, field)

const size_t imgserv_jpeg_layout[] = {
    sizeof(struct jpeg_decompress_struct),
    _Alignof(struct jpeg_decompress_struct),
    /* Public fields, through mozjpeg-sys's declaration. */
    D(err),
    D(src),
    D(num_components),
    D(jpeg_color_space),
    D(out_color_space),
    D(scale_num),
    D(scale_denom),
    D(do_fancy_upsampling),
    D(output_width),
    D(output_height),
    D(output_components),
    D(output_scanline),
    D(max_h_samp_factor),
    D(max_v_samp_factor),
    /* Private fields, through jpeg_rows::Tail. */
    D(comps_in_scan),
    D(blocks_in_MCU),
    D(MCU_membership),
    sizeof(((struct jpeg_decompress_struct *)0)->MCU_membership),
    D(Ss),
    D(Se),
    D(Ah),
    D(Al),
    D(unread_marker),
    D(entropy),
    /* The memory source libjpeg reads, which our decoder moves on. */
    offsetof(struct jpeg_source_mgr, next_input_byte),
    offsetof(struct jpeg_source_mgr, bytes_in_buffer),
    /* struct jpeg_entropy_decoder (jpegint.h), which jpeg_rows::EntropyPublic mirrors. */
    sizeof(struct jpeg_entropy_decoder),
    offsetof(struct jpeg_entropy_decoder, start_pass),
    offsetof(struct jpeg_entropy_decoder, decode_mcu),
    offsetof(struct jpeg_entropy_decoder, insufficient_data),
    /* The ABI version the headers were configured for (62: mozjpeg-sys's default). */
    JPEG_LIB_VERSION,
};

const size_t imgserv_jpeg_layout_len = sizeof imgserv_jpeg_layout / sizeof imgserv_jpeg_layout[0];
