"""Plausible Vietnamese names: people, companies, streets, addresses (all TCVN3-encodable)."""

from __future__ import annotations

import numpy as np

# Surnames with their approximate national frequency.
SURNAMES = (
    ("Nguyễn", 38),
    ("Trần", 11),
    ("Lê", 9.5),
    ("Phạm", 7),
    ("Hoàng", 5),
    ("Vũ", 4),
    ("Phan", 4),
    ("Đặng", 2),
    ("Bùi", 2),
    ("Đỗ", 1.5),
    ("Ngô", 1.3),
    ("Dương", 1),
    ("Lý", 0.5),
    ("Đinh", 1),
    ("Đào", 1),
    ("Trịnh", 0.8),
    ("Mai", 0.6),
    ("Lương", 0.6),
    ("Tạ", 0.4),
    ("Hà", 0.6),
    ("Lưu", 0.4),
    ("Chu", 0.4),
    ("Tô", 0.3),
    ("Đoàn", 0.6),
)
MIDDLE_MALE = ("Văn", "Đức", "Minh", "Quang", "Hữu", "Xuân", "Thanh", "Công", "Mạnh", "Tiến")
MIDDLE_FEMALE = ("Thị", "Thu", "Ngọc", "Thanh", "Kim", "Minh", "Thúy", "Hồng", "Phương", "Bích")
GIVEN_MALE = (
    "Hùng",
    "Dũng",
    "Tuấn",
    "Nam",
    "Hải",
    "Long",
    "Thắng",
    "Cường",
    "Quân",
    "Sơn",
    "Trung",
    "Hiếu",
    "Huy",
    "Khánh",
    "Phong",
    "Tùng",
    "Việt",
    "Đạt",
    "Bình",
    "Lâm",
    "Tài",
    "Thành",
    "Vinh",
    "Đông",
    "Quý",
    "Kiên",
    "Duy",
    "Hòa",
    "Toàn",
    "Lực",
)
GIVEN_FEMALE = (
    "Hoa",
    "Lan",
    "Hương",
    "Mai",
    "Linh",
    "Trang",
    "Thảo",
    "Hà",
    "Hằng",
    "Nga",
    "Yến",
    "Nhung",
    "Huyền",
    "Ngọc",
    "Thủy",
    "Dung",
    "Loan",
    "Vân",
    "Oanh",
    "Phượng",
    "Liên",
    "Hạnh",
    "Quỳnh",
    "Ánh",
    "Giang",
    "Uyên",
    "Trinh",
    "Thơm",
    "Hiền",
    "Ly",
)
TRADE_NAMES = (
    "Hải Long",
    "Minh Phát",
    "Thành Công",
    "Quảng Ninh Xanh",
    "Vịnh Ngọc",
    "Bãi Cháy",
    "Hòn Gai",
    "Phương Đông",
    "Trường Thịnh",
    "An Phú",
    "Hưng Thịnh",
    "Đông Bắc",
    "Hồng Hà",
    "Sao Biển",
    "Tuần Châu",
    "Hoàng Gia",
    "Việt Hàn",
    "Kim Sơn",
    "Bạch Đằng",
    "Thiên Phú",
)
COMPANY_FORMS = (
    "Công ty TNHH",
    "Công ty Cổ phần",
    "Công ty TNHH Thương mại",
    "Công ty CP Đầu tư",
    "Công ty TNHH Xây dựng",
)
# People and dates streets are named after, as in most Vietnamese cities.
STREET_PEOPLE = (
    "Trần Hưng Đạo",
    "Lê Thánh Tông",
    "Nguyễn Văn Cừ",
    "Lê Lợi",
    "Hạ Long",
    "Cao Thắng",
    "Bến Đoan",
    "Lê Quý Đôn",
    "Nguyễn Du",
    "Trần Phú",
    "Hoàng Quốc Việt",
    "Kênh Liêm",
    "Nguyễn Văn Linh",
    "Trần Quốc Nghiễn",
    "Tô Hiến Thành",
    "Lý Tự Trọng",
    "Giếng Đồn",
    "Hoàng Long",
    "Anh Đào",
    "Hậu Cần",
    "Vũ Văn Hiếu",
    "Lê Hồng Phong",
    "Nguyễn Trãi",
    "Quang Trung",
    "Hai Bà Trưng",
    "Lý Thường Kiệt",
    "Phan Bội Châu",
    "Phan Chu Trinh",
    "Hùng Vương",
    "Bạch Đằng",
    "Đặng Bá Hát",
    "Ngô Quyền",
    "Trần Nhân Tông",
    "Hoàng Hoa Thám",
    "Nguyễn Thái Học",
    "Võ Thị Sáu",
    "Tuệ Tĩnh",
    "Chu Văn An",
    "Lê Lai",
    "Tuần Châu",
    "Phạm Ngũ Lão",
    "Nguyễn Đức Cảnh",
    "Tô Ngọc Vân",
    "Lê Văn Tám",
    "Kim Đồng",
    "Cái Dăm",
    "Thanh Niên",
    "Hòn Gai",
    "Trần Khánh Dư",
    "Yết Kiêu",
    "Trần Quốc Tảng",
    "Lê Đại Hành",
    "Minh Hà",
    "Vân Đồn",
    "Cột Đồng Hồ",
    "Hồng Hà",
    "Ba Đèo",
    "Bà Triệu",
    "Lý Bôn",
    "Nguyễn Công Trứ",
    "Trần Quang Khải",
    "Vũ Trọng Phụng",
    "Nguyễn Bỉnh Khiêm",
    "Tôn Thất Thuyết",
    "Đội Cấn",
    "Nguyễn Chí Thanh",
    "Tố Hữu",
    "Phạm Văn Đồng",
    "Lê Duẩn",
    "Trường Chinh",
    "Nguyễn Tất Thành",
    "Hoàng Văn Thụ",
    "Mạc Đĩnh Chi",
    "Trần Bình Trọng",
    "Lạc Long Quân",
    "Âu Cơ",
    "An Dương Vương",
    "Ngô Gia Tự",
    "Điện Biên Phủ",
    "Đại Yên",
    "Hà Khánh",
    "Cao Xanh",
    "Hà Lầm",
    "Bãi Cháy",
    "Vườn Đào",
    "Cầu Sến",
    "Yên Thanh",
    "Quang Hanh",
    "Cửa Ông",
    "Mông Dương",
    "Hữu Nghị",
    "Ka Long",
    "Tuệ Tĩnh",
    "Hòa Lạc",
    "Trà Cổ",
)
STREET_DATES = ("25/4", "3/2", "30/10", "12/11", "2/9", "19/5", "1/5", "26/3", "19/8", "30/4")


def person_names(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` random full names (surname, middle name, given name), half of them women."""
    sur = np.array([s for s, _ in SURNAMES], dtype=object)
    freq = np.array([f for _, f in SURNAMES])
    surname = sur[rng.choice(len(sur), size=n, p=freq / freq.sum())]
    female = rng.random(n) < 0.5
    mid = np.where(
        female,
        np.array(MIDDLE_FEMALE, dtype=object)[rng.integers(0, len(MIDDLE_FEMALE), n)],
        np.array(MIDDLE_MALE, dtype=object)[rng.integers(0, len(MIDDLE_MALE), n)],
    )
    given = np.where(
        female,
        np.array(GIVEN_FEMALE, dtype=object)[rng.integers(0, len(GIVEN_FEMALE), n)],
        np.array(GIVEN_MALE, dtype=object)[rng.integers(0, len(GIVEN_MALE), n)],
    )
    return surname + " " + mid + " " + given


def company_names(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` random company names such as 'Công ty TNHH Minh Phát'."""
    form = np.array(COMPANY_FORMS, dtype=object)[rng.integers(0, len(COMPANY_FORMS), n)]
    trade = np.array(TRADE_NAMES, dtype=object)[rng.integers(0, len(TRADE_NAMES), n)]
    return form + " " + trade


def street_names(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` distinct street names ('Đường Trần Hưng Đạo', 'Phố Cao Thắng', 'Đường 25/4', …)."""
    people = list(dict.fromkeys(STREET_PEOPLE))
    pool = [f"Đường {p}" for p in people] + [f"Đường {d}" for d in STREET_DATES]
    pool = [pool[i] for i in rng.permutation(len(pool))]
    extra = [f"Phố {p}" for p in people]
    pool += [extra[i] for i in rng.permutation(len(extra))]
    k = 1
    while len(pool) < n:  # more roads than names: numbered streets, as new areas have
        pool.append(f"Đường số {k}")
        k += 1
    return pool[:n]


def addresses(
    rng: np.random.Generator, commune_names: np.ndarray, is_ward: np.ndarray
) -> np.ndarray:
    """Addresses: 'Tổ 5, Khu 3, Phường Hồng Gai' in wards, 'Thôn 4, Xã Quảng La' in communes."""
    n = len(commune_names)
    to = rng.integers(1, 61, n).astype(str).astype(object)
    khu = rng.integers(1, 13, n).astype(str).astype(object)
    thon = rng.integers(1, 16, n).astype(str).astype(object)
    names = np.asarray(commune_names, dtype=object)
    ward = "Tổ " + to + ", Khu " + khu + ", " + names
    rural = "Thôn " + thon + ", " + names
    return np.where(np.asarray(is_ward, dtype=bool), ward, rural)


def short_name(commune_name: str) -> str:
    """'Phường Hồng Gai' → 'Hồng Gai'."""
    for prefix in ("Phường ", "Xã ", "Đặc khu "):
        if commune_name.startswith(prefix):
            return commune_name[len(prefix) :]
    return commune_name
