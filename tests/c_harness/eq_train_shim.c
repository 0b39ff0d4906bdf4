/* Test shim: eq_train_step (static inline in eq_train.h) as an exported, vectorised
 * function, to compare it with edgeq.training.update.step on the same inputs. */
#include <stdint.h>

#include "eq_train.h"

void shim_train_step(int32_t n, const int32_t *acc, const int32_t *mult, const int32_t *shift, int32_t e,
                     int32_t stochastic, eq_draws *draws, int32_t *y)
{
    int32_t i;
    for (i = 0; i < n; ++i) {
        const uint32_t draw = eq_draw(draws, (uint32_t)i);
        y[i] = eq_train_step(acc[i], mult[i], shift[i], e, stochastic ? &draw : 0);
    }
    if (stochastic) {
        draws->counter += (uint32_t)n;
    }
}
