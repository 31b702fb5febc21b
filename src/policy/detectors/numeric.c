/* numeric.c — one pass over the digits of a text for the number-shaped
 * built-ins (credit_card, us_ssn, phone, ipv4, iban): digit runs are found 16
 * bytes at a time, and each detector's validator (card.c, ssn.c, ...) is
 * called only when cheap tests on the run and its neighbours allow a match. */
#include "policy/detectors/detectors.h"

void detect_numeric(const unsigned char *s, size_t n, const struct numeric_sinks *ks)
{
    const struct hit_sink *const *sink = ks->k;
    size_t resume[NUM_KINDS] = { 0 };    /* per detector: no new match before this */
    size_t i = 0;
    while ((i = next_digit(s, i, n)) < n) {
        size_t run_end = i + 1;
        while (run_end < n && is_digit(s[run_end]))
            run_end++;
        size_t len = run_end - i;
        unsigned char prev = i > 0 ? s[i - 1] : ' ';
        unsigned char next = run_end < n ? s[run_end] : ' ';
        int next_digit_after = run_end + 1 < n && is_digit(s[run_end + 1]);
        size_t start = i, end;

        if (sink[NUM_CARD] && i >= resume[NUM_CARD] &&
            ((len >= 13 && len <= 19) || (len == 4 && (next == ' ' || next == '-') && next_digit_after))) {
            end = card_at(s, n, i, run_end);
            if (end) {
                sink_hit(sink[NUM_CARD], i, end);
                resume[NUM_CARD] = end;
            }
        }
        if (sink[NUM_SSN] && i >= resume[NUM_SSN] && ((len == 3 && (next == '-' || next == ' ' || next == '.')) || len == 9)) {
            end = ssn_at(s, n, i, run_end);
            if (end) {
                sink_hit(sink[NUM_SSN], i, end);
                resume[NUM_SSN] = end;
            }
        }
        if (sink[NUM_PHONE] && i >= resume[NUM_PHONE] &&
            (prev == '+' || prev == '(' ||
             ((next == ' ' || next == '-' || next == '.' || next == '/') &&
              (next_digit_after || (run_end + 1 < n && s[run_end + 1] == '('))) ||
             (len >= 9 && s[i] == '0' && i + 1 < n && s[i + 1] == '0'))) {
            end = phone_at(s, n, i, &start);
            if (end && start >= resume[NUM_PHONE]) {
                sink_hit(sink[NUM_PHONE], start, end);
                resume[NUM_PHONE] = end;
            }
        }
        if (sink[NUM_IPV4] && i >= resume[NUM_IPV4] && len <= 3 && next == '.' && next_digit_after) {
            end = ipv4_at(s, n, i);
            if (end) {
                sink_hit(sink[NUM_IPV4], i, end);
                resume[NUM_IPV4] = end;
            }
        }
        if (sink[NUM_IBAN] && i >= resume[NUM_IBAN] && i >= 2 && is_alpha(s[i - 1]) && is_alpha(s[i - 2]) &&
            (i == 2 || !is_alnum(s[i - 3]))) {
            end = iban_at(s, n, i, &start);
            if (end) {
                sink_hit(sink[NUM_IBAN], start, end);
                resume[NUM_IBAN] = end;
            }
        }
        i = run_end;
    }
}
