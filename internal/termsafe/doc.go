// Package termsafe is the one sanitiser between containers and the
// operator's terminal. Every byte that comes out of a container (pane
// content, exec output, error text, option values, names read back) is
// hostile; before it reaches a terminal it goes through one of two filters:
//
//   - View, for a live terminal view (attach, watch): printable text (valid
//     UTF-8), \n \r \t \b, SGR colours, cursor movement and positioning,
//     erase, insert/delete, scroll region, charset designation, and a short
//     list of DEC private modes that only change how the screen looks
//     (cursor visibility, alternate screen, autowrap, ...). Everything else
//     is dropped: OSC (titles, 8 links, 52 clipboard, all of it), DCS, APC,
//     PM, SOS, C1 controls in their 7-bit, 8-bit and UTF-8 forms, queries
//     and reports (DSR, DA, DECRQM, window ops), mouse and focus reporting,
//     and every other mode that makes the terminal send input or
//     reprograms it.
//   - Plain, for text (status, errors, capture, audit, logs): printable
//     text, \n and \t, and no escape at all.
//
// Both are streams: state is kept between calls, so a sequence split across
// chunks is judged whole, and never half of it passes. Text and Line do the
// same for a whole string.
package termsafe
