// ncursesw for Swift: the wide-character API, and functions for what Swift cannot import
// (macros, attribute constants, global variables that strict concurrency rejects).
#ifndef SHMTOP_CNCURSES_SHIM_H
#define SHMTOP_CNCURSES_SHIM_H

// SwiftPM drops -D_XOPEN_SOURCE from pkg-config flags; this exposes cchar_t, get_wch and friends.
#define _XOPEN_SOURCE_EXTENDED 1
#include <ncursesw/curses.h>
#include <locale.h>
#include <signal.h>

/// A screen on the process's standard output and input (unlike initscr, returns NULL on failure).
static inline SCREEN *shm_newterm_stdio(void) { return newterm(NULL, stdout, stdin); }

static inline WINDOW *shm_stdscr(void) { return stdscr; }
static inline int shm_lines(void) { return LINES; }
static inline int shm_cols(void) { return COLS; }
static inline int shm_colors(void) { return COLORS; }
static inline int shm_color_pairs(void) { return COLOR_PAIRS; }

static inline attr_t shm_attr_normal(void) { return A_NORMAL; }
static inline attr_t shm_attr_bold(void) { return A_BOLD; }
static inline attr_t shm_attr_dim(void) { return A_DIM; }
static inline attr_t shm_attr_reverse(void) { return A_REVERSE; }
static inline attr_t shm_attr_underline(void) { return A_UNDERLINE; }
static inline attr_t shm_color_pair(int pair) { return COLOR_PAIR(pair); }

/// Sets the attributes and colour pair of the characters written next.
static inline int shm_set_attributes(attr_t attributes, short pair) { return attr_set(attributes, pair, NULL); }

/// The mouse button-1 events this program asks for.
static inline mmask_t shm_mouse_click_mask(void) { return BUTTON1_CLICKED | BUTTON1_PRESSED | BUTTON1_RELEASED; }
/// True when `state` (an MEVENT's bstate) is a button-1 press or click.
static inline int shm_is_click(mmask_t state) { return (state & (BUTTON1_CLICKED | BUTTON1_PRESSED)) != 0; }

/// Reads one key or character: the code, and whether it is a function key (KEY_*).
/// Returns ERR on timeout or interruption.
static inline int shm_read_key(int *code, int *is_function_key) {
    wint_t wide = 0;
    int result = get_wch(&wide);
    *code = (int)wide;
    *is_function_key = result == KEY_CODE_YES;
    return result == ERR ? ERR : OK;
}
#endif
