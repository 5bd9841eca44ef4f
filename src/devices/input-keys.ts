/**
 * Linux key codes (include/uapi/linux/input-event-codes.h) by their `KEY_*` names, as
 * `virsh send-key --codeset linux` takes them: what a virtio-input keyboard sends.
 */

const NAMES: ReadonlyArray<[string, number]> = [
  ['ESC', 1], ['1', 2], ['2', 3], ['3', 4], ['4', 5], ['5', 6], ['6', 7], ['7', 8], ['8', 9], ['9', 10], ['0', 11],
  ['MINUS', 12], ['EQUAL', 13], ['BACKSPACE', 14], ['TAB', 15], ['Q', 16], ['W', 17], ['E', 18], ['R', 19], ['T', 20],
  ['Y', 21], ['U', 22], ['I', 23], ['O', 24], ['P', 25], ['LEFTBRACE', 26], ['RIGHTBRACE', 27], ['ENTER', 28],
  ['LEFTCTRL', 29], ['A', 30], ['S', 31], ['D', 32], ['F', 33], ['G', 34], ['H', 35], ['J', 36], ['K', 37], ['L', 38],
  ['SEMICOLON', 39], ['APOSTROPHE', 40], ['GRAVE', 41], ['LEFTSHIFT', 42], ['BACKSLASH', 43], ['Z', 44], ['X', 45],
  ['C', 46], ['V', 47], ['B', 48], ['N', 49], ['M', 50], ['COMMA', 51], ['DOT', 52], ['SLASH', 53], ['RIGHTSHIFT', 54],
  ['KPASTERISK', 55], ['LEFTALT', 56], ['SPACE', 57], ['CAPSLOCK', 58], ['F1', 59], ['F2', 60], ['F3', 61], ['F4', 62],
  ['F5', 63], ['F6', 64], ['F7', 65], ['F8', 66], ['F9', 67], ['F10', 68], ['NUMLOCK', 69], ['SCROLLLOCK', 70],
  ['KP7', 71], ['KP8', 72], ['KP9', 73], ['KPMINUS', 74], ['KP4', 75], ['KP5', 76], ['KP6', 77], ['KPPLUS', 78],
  ['KP1', 79], ['KP2', 80], ['KP3', 81], ['KP0', 82], ['KPDOT', 83], ['102ND', 86], ['F11', 87], ['F12', 88],
  ['KPENTER', 96], ['RIGHTCTRL', 97], ['KPSLASH', 98], ['SYSRQ', 99], ['RIGHTALT', 100], ['HOME', 102], ['UP', 103],
  ['PAGEUP', 104], ['LEFT', 105], ['RIGHT', 106], ['END', 107], ['DOWN', 108], ['PAGEDOWN', 109], ['INSERT', 110],
  ['DELETE', 111], ['MUTE', 113], ['VOLUMEDOWN', 114], ['VOLUMEUP', 115], ['POWER', 116], ['PAUSE', 119],
  ['LEFTMETA', 125], ['RIGHTMETA', 126], ['COMPOSE', 127],
];

/** `KEY_*` name (without the prefix) -> code. */
export const LINUX_KEY_CODES: ReadonlyMap<string, number> = new Map(NAMES);

/** Largest key code a tsvisor keyboard sends (KEY_MICMUTE). */
export const MAX_KEY_CODE = 248;

/**
 * The code of key `name`: `KEY_A`, `a`, `A` (the prefix and case are optional) or a
 * decimal code from 1 to {@link MAX_KEY_CODE}.
 * @throws RangeError naming the key.
 */
export function linuxKeyCode(name: string): number {
  if (/^\d+$/.test(name)) {
    const n = Number(name);
    if (n >= 1 && n <= MAX_KEY_CODE) return n;
    throw new RangeError(`key code ${name}: expected 1 to ${MAX_KEY_CODE}`);
  }
  const code = LINUX_KEY_CODES.get(name.toUpperCase().replace(/^KEY_/, ''));
  if (code === undefined) throw new RangeError(`unknown key "${name}" (Linux names such as KEY_A, KEY_ENTER, KEY_LEFTCTRL, or a code)`);
  return code;
}
