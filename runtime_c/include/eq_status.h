/* Status codes every edgeq kernel returns. A kernel checks its arguments before it writes
 * any output, so on an error the output buffer is untouched. */
#ifndef EQ_STATUS_H
#define EQ_STATUS_H

typedef enum {
    EQ_OK = 0,
    EQ_ERR_ARG = 1,   /* NULL pointer, non-positive size, value outside its documented range */
    EQ_ERR_SHAPE = 2  /* dimensions inconsistent with each other (e.g. out_h vs in_h, pads) */
} eq_status;

#endif /* EQ_STATUS_H */
