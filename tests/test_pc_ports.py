from efistub.arch.pc_ports import GATE2, OUT2, PORT_B, PORT_CHANNEL2, PORT_CONTROL, PcPorts
from efistub.firmware import new_state


def test_channel2_expires_after_its_count_in_virtual_time():
    state = new_state()
    ports = PcPorts(state)
    ports.write(PORT_B, 1, ports.read(PORT_B, 1) & ~GATE2)
    ports.write(PORT_CONTROL, 1, 0xB0)  # channel 2, lobyte/hibyte
    ports.write(PORT_CHANNEL2, 1, 0x9B)  # 0x2E9B ticks: 10 ms at 1.193182 MHz
    ports.write(PORT_CHANNEL2, 1, 0x2E)
    ports.write(PORT_B, 1, GATE2)
    start = state.virtual_time_us
    polls = 0
    while not ports.read(PORT_B, 1) & OUT2:
        polls += 1
    assert 9_990 <= state.virtual_time_us - start <= 10_010
    assert polls > 9_000  # each access took a microsecond


def test_absent_ports_read_as_all_ones():
    assert PcPorts(new_state()).read(0x3F8, 1) == 0xFF
