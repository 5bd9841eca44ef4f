/**
 * What a VNC viewer's key means as a Linux key code (include/uapi/linux/input-event-codes.h),
 * which the display's virtio-input keyboard sends:
 *
 *  - a KeyEvent's X keysym (RFC 6143 §7.5.4; X11 keysymdef.h): the key that types it on a
 *    US keyboard (the viewer sends Shift itself, so `A` and `a` are both KEY_A);
 *  - a QEMU extended key event's key code: a PC/XT scan code set 1 code, with 0xE0-prefixed
 *    codes given as 0x80 | code (QEMU's "qnum"), which names the physical key whatever the
 *    viewer's layout is.
 */
import { LINUX_KEY_CODES } from '../../devices/input-keys.js';

const code = (name: string): number => LINUX_KEY_CODES.get(name)!;

/** Printable ASCII on a US keyboard: unshifted, then shifted, characters of the same keys. */
const US_PLAIN = '`1234567890-=qwertyuiop[]\\asdfghjkl;\'zxcvbnm,./ ';
const US_SHIFTED = '~!@#$%^&*()_+QWERTYUIOP{}|ASDFGHJKL:"ZXCVBNM<>? ';
const US_KEYS = [
  'GRAVE', '1', '2', '3', '4', '5', '6', '7', '8', '9', '0', 'MINUS', 'EQUAL',
  'Q', 'W', 'E', 'R', 'T', 'Y', 'U', 'I', 'O', 'P', 'LEFTBRACE', 'RIGHTBRACE', 'BACKSLASH',
  'A', 'S', 'D', 'F', 'G', 'H', 'J', 'K', 'L', 'SEMICOLON', 'APOSTROPHE',
  'Z', 'X', 'C', 'V', 'B', 'N', 'M', 'COMMA', 'DOT', 'SLASH', 'SPACE',
];

/** X keysyms of the function, modifier and keypad keys (keysymdef.h). */
const SPECIAL_KEYSYMS: ReadonlyArray<[number, string]> = [
  [0xff08, 'BACKSPACE'], [0xff09, 'TAB'], [0xff0d, 'ENTER'], [0xff13, 'PAUSE'], [0xff14, 'SCROLLLOCK'],
  [0xff15, 'SYSRQ'], [0xff1b, 'ESC'], [0xff50, 'HOME'], [0xff51, 'LEFT'], [0xff52, 'UP'], [0xff53, 'RIGHT'],
  [0xff54, 'DOWN'], [0xff55, 'PAGEUP'], [0xff56, 'PAGEDOWN'], [0xff57, 'END'], [0xff61, 'SYSRQ'],
  [0xff63, 'INSERT'], [0xff67, 'COMPOSE'], [0xff7f, 'NUMLOCK'], [0xffff, 'DELETE'],
  [0xff8d, 'KPENTER'], [0xffaa, 'KPASTERISK'], [0xffab, 'KPPLUS'], [0xffad, 'KPMINUS'], [0xffae, 'KPDOT'],
  [0xffaf, 'KPSLASH'], [0xffb0, 'KP0'], [0xffb1, 'KP1'], [0xffb2, 'KP2'], [0xffb3, 'KP3'], [0xffb4, 'KP4'],
  [0xffb5, 'KP5'], [0xffb6, 'KP6'], [0xffb7, 'KP7'], [0xffb8, 'KP8'], [0xffb9, 'KP9'],
  [0xff95, 'KP7'], [0xff96, 'KP4'], [0xff97, 'KP8'], [0xff98, 'KP6'], [0xff99, 'KP2'], [0xff9a, 'KP9'],
  [0xff9b, 'KP3'], [0xff9c, 'KP1'], [0xff9d, 'KP5'], [0xff9e, 'KP0'], [0xff9f, 'KPDOT'],
  [0xffbe, 'F1'], [0xffbf, 'F2'], [0xffc0, 'F3'], [0xffc1, 'F4'], [0xffc2, 'F5'], [0xffc3, 'F6'],
  [0xffc4, 'F7'], [0xffc5, 'F8'], [0xffc6, 'F9'], [0xffc7, 'F10'], [0xffc8, 'F11'], [0xffc9, 'F12'],
  [0xffe1, 'LEFTSHIFT'], [0xffe2, 'RIGHTSHIFT'], [0xffe3, 'LEFTCTRL'], [0xffe4, 'RIGHTCTRL'],
  [0xffe5, 'CAPSLOCK'], [0xffe7, 'LEFTMETA'], [0xffe8, 'RIGHTMETA'], [0xffe9, 'LEFTALT'], [0xffea, 'RIGHTALT'],
  [0xffeb, 'LEFTMETA'], [0xffec, 'RIGHTMETA'], [0xfe03, 'RIGHTALT'],
];

const KEYSYMS: ReadonlyMap<number, number> = new Map<number, number>([
  ...[...US_PLAIN].map((ch, i): [number, number] => [ch.charCodeAt(0), code(US_KEYS[i])]),
  ...[...US_SHIFTED].map((ch, i): [number, number] => [ch.charCodeAt(0), code(US_KEYS[i])]),
  ...SPECIAL_KEYSYMS.map(([sym, name]): [number, number] => [sym, code(name)]),
]);

/** 0xE0-prefixed scan codes (as 0x80 | code) -> key name. */
const EXTENDED_SCANCODES: ReadonlyArray<[number, string]> = [
  [0x9c, 'KPENTER'], [0x9d, 'RIGHTCTRL'], [0xb5, 'KPSLASH'], [0xb7, 'SYSRQ'], [0xb8, 'RIGHTALT'],
  [0xc6, 'PAUSE'], [0xc7, 'HOME'], [0xc8, 'UP'], [0xc9, 'PAGEUP'], [0xcb, 'LEFT'], [0xcd, 'RIGHT'],
  [0xcf, 'END'], [0xd0, 'DOWN'], [0xd1, 'PAGEDOWN'], [0xd2, 'INSERT'], [0xd3, 'DELETE'],
  [0xdb, 'LEFTMETA'], [0xdc, 'RIGHTMETA'], [0xdd, 'COMPOSE'], [0xa0, 'MUTE'], [0xae, 'VOLUMEDOWN'],
  [0xb0, 'VOLUMEUP'], [0xde, 'POWER'],
];
const EXTENDED: ReadonlyMap<number, number> = new Map(EXTENDED_SCANCODES.map(([sc, name]): [number, number] => [sc, code(name)]));

/** The Linux key code of X keysym `keysym` (US layout), or 0 for a keysym no key types. */
export function keysymToLinux(keysym: number): number {
  return KEYSYMS.get(keysym) ?? 0;
}

/**
 * The Linux key code of QEMU key code `qnum` (scan code set 1, 0x80 | code for 0xE0-prefixed
 * keys), or 0 for one with no Linux key.
 */
export function qnumToLinux(qnum: number): number {
  // set 1 codes 0x01 (Esc) to 0x53 (keypad .) are Linux's codes 1 to 83, as are F11/F12 and the 102nd key
  if ((qnum >= 0x01 && qnum <= 0x53) || qnum === 0x56 || qnum === 0x57 || qnum === 0x58) return qnum;
  return EXTENDED.get(qnum) ?? 0;
}
