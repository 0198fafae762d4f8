/*
 * keys: EFI_SIMPLE_TEXT_INPUT_EX_PROTOCOL (UEFI 2.10 12.2) on the console input handle,
 * with the key presses efistub's --keys gives. Run it as
 *   efistub run --keys 'axxy' ARCH/keys.efi
 * efistub only: on real firmware nobody types the keys.
 */
#include "lib.h"

static EFI_GUID input_ex_guid = EFI_SIMPLE_TEXT_INPUT_EX_PROTOCOL_GUID;

static volatile UINTN notified;
static volatile CHAR16 notified_char;
static volatile UINTN read_seen_at_notify; /* keys read so far when the notification ran */
static UINTN keys_read;

static EFI_STATUS EFIAPI on_x(EFI_KEY_DATA *KeyData)
{
    notified++;
    notified_char = KeyData->Key.UnicodeChar;
    read_seen_at_notify = keys_read;
    return EFI_SUCCESS;
}

static EFI_STATUS EFIAPI never(EFI_KEY_DATA *KeyData)
{
    (void)KeyData;
    notified += 100;
    return EFI_SUCCESS;
}

static CHAR16 read_ex(EFI_SIMPLE_TEXT_INPUT_EX_PROTOCOL *in, EFI_STATUS *st, EFI_KEY_DATA *data)
{
    memset(data, 0xA5, sizeof(*data));
    *st = in->ReadKeyStrokeEx(in, data);
    if (*st == EFI_SUCCESS)
        keys_read++;
    return *st == EFI_SUCCESS ? data->Key.UnicodeChar : 0;
}

static void test_keys(void)
{
    EFI_SIMPLE_TEXT_INPUT_EX_PROTOCOL *in = NULL;
    EFI_KEY_DATA data, want;
    EFI_STATUS st;
    VOID *handle = NULL, *again = NULL, *ctrl = NULL;
    EFI_INPUT_KEY key;
    UINTN index = 99;
    UINT8 state;

    if (!CHECK_STATUS(gBS->HandleProtocol(gST->ConsoleInHandle, &input_ex_guid, (VOID **)&in), EFI_SUCCESS,
                      L"HandleProtocol(ConsoleInHandle, SIMPLE_TEXT_INPUT_EX)"))
        return;
    CHECK_STATUS(in->Reset(in, FALSE), EFI_SUCCESS, L"Reset");

    memset(&want, 0, sizeof(want));
    want.Key.UnicodeChar = L'x';
    CHECK_STATUS(in->RegisterKeyNotify(in, &want, on_x, &handle), EFI_SUCCESS, L"RegisterKeyNotify('x')");
    CHECK(handle != NULL, L"RegisterKeyNotify: a handle");
    CHECK(in->RegisterKeyNotify(in, &want, on_x, &again) == EFI_SUCCESS && again == handle,
          L"RegisterKeyNotify: the same key and function again give the same handle");
    CHECK_STATUS(in->RegisterKeyNotify(in, NULL, on_x, &again), EFI_INVALID_PARAMETER,
                 L"RegisterKeyNotify: NULL KeyData");
    CHECK_STATUS(in->RegisterKeyNotify(in, &want, NULL, &again), EFI_INVALID_PARAMETER,
                 L"RegisterKeyNotify: NULL function");
    /* Ctrl+x: a registered shift state must match, and keys from a serial terminal have none */
    want.KeyState.KeyShiftState = EFI_SHIFT_STATE_VALID | EFI_LEFT_CONTROL_PRESSED;
    CHECK_STATUS(in->RegisterKeyNotify(in, &want, never, &ctrl), EFI_SUCCESS, L"RegisterKeyNotify(Ctrl+x)");

    CHECK_STATUS(gBS->WaitForEvent(1, &in->WaitForKeyEx, &index), EFI_SUCCESS, L"WaitForEvent(WaitForKeyEx)");
    CHECK(index == 0, L"WaitForEvent: Index 0");
    CHECK(read_ex(in, &st, &data) == L'a' && st == EFI_SUCCESS, L"ReadKeyStrokeEx: 'a'");
    CHECK(data.Key.ScanCode == 0 && data.KeyState.KeyShiftState == 0, L"ReadKeyStrokeEx: no scan code or shift state");
    CHECK(notified == 0, L"no notification for 'a'");
    CHECK(read_ex(in, &st, &data) == L'x', L"ReadKeyStrokeEx: 'x'");
    CHECK(notified == 1 && notified_char == L'x', L"the notification ran once, with KeyData 'x'");
    CHECK(read_seen_at_notify == 1, L"the notification ran before the read that returned 'x'");

    CHECK_STATUS(in->UnregisterKeyNotify(in, handle), EFI_SUCCESS, L"UnregisterKeyNotify");
    CHECK_STATUS(in->UnregisterKeyNotify(in, handle), EFI_INVALID_PARAMETER, L"UnregisterKeyNotify: again");
    CHECK_STATUS(in->UnregisterKeyNotify(in, ctrl), EFI_SUCCESS, L"UnregisterKeyNotify(Ctrl+x)");
    CHECK(read_ex(in, &st, &data) == L'x' && notified == 1, L"the second 'x' runs no notification");

    state = 0;
    CHECK_STATUS(in->SetState(in, &state), EFI_UNSUPPORTED, L"SetState without EFI_TOGGLE_STATE_VALID");
    state = EFI_TOGGLE_STATE_VALID;
    CHECK_STATUS(in->SetState(in, &state), EFI_SUCCESS, L"SetState(EFI_TOGGLE_STATE_VALID)");
    CHECK_STATUS(in->SetState(in, NULL), EFI_INVALID_PARAMETER, L"SetState(NULL)");

    /* the plain protocol reads from the same queue */
    CHECK(gST->ConIn->ReadKeyStroke(gST->ConIn, &key) == EFI_SUCCESS && key.UnicodeChar == L'y',
          L"ReadKeyStroke: 'y' from the same queue");
    CHECK_STATUS(in->ReadKeyStrokeEx(in, &data), EFI_NOT_READY, L"ReadKeyStrokeEx: no key left");
    CHECK_STATUS(in->ReadKeyStrokeEx(in, NULL), EFI_INVALID_PARAMETER, L"ReadKeyStrokeEx(NULL)");
}

EFI_STATUS EFIAPI efi_main(EFI_HANDLE image, EFI_SYSTEM_TABLE *st)
{
    lib_init(image, st);
    test_keys();
    return lib_done();
}
