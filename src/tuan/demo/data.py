"""The demo's fixed material: places, names and the catalog with prices in cents (分).

Nothing here touches the database; :mod:`tuan.demo.simulate` draws from these lists with a
seeded random generator, so the same seed always builds the same business.
"""

from __future__ import annotations

from dataclasses import dataclass

# -- places --------------------------------------------------------------------------------------

# (city, district, community); ten residential communities (小区) per city.
COMMUNITIES: tuple[tuple[str, str, str], ...] = (
    ("长沙", "岳麓区", "梅溪湖金茂悦"),
    ("长沙", "岳麓区", "保利麓谷林语"),
    ("长沙", "天心区", "北辰三角洲"),
    ("长沙", "雨花区", "万科魅力之城"),
    ("长沙", "开福区", "湘江世纪城"),
    ("长沙", "芙蓉区", "融科东南海"),
    ("长沙", "雨花区", "中建嘉和城"),
    ("长沙", "岳麓区", "碧桂园梅溪湖壹号"),
    ("长沙", "天心区", "华润凤凰城"),
    ("长沙", "开福区", "新城国际花都"),
    ("武汉", "洪山区", "光谷保利时代"),
    ("武汉", "洪山区", "南湖都市桃源"),
    ("武汉", "江岸区", "百步亭花园"),
    ("武汉", "武昌区", "中建御景星城"),
    ("武汉", "江汉区", "万科城市花园"),
    ("武汉", "汉阳区", "四新国际社区"),
    ("武汉", "东西湖区", "金地自在城"),
    ("武汉", "江岸区", "后湖常青花园"),
    ("武汉", "武昌区", "融创御府"),
    ("武汉", "洪山区", "绿地光谷星河"),
    ("杭州", "滨江区", "金色海岸"),
    ("杭州", "西湖区", "西溪诚园"),
    ("杭州", "余杭区", "良渚文化村"),
    ("杭州", "西湖区", "翠苑一区"),
    ("杭州", "拱墅区", "申花香樟公寓"),
    ("杭州", "余杭区", "万科璞悦湾"),
    ("杭州", "上城区", "九堡东方郡"),
    ("杭州", "西湖区", "蒋村花园"),
    ("杭州", "拱墅区", "运河宸园"),
    ("杭州", "上城区", "春江花月"),
)

ROADS: dict[str, tuple[str, ...]] = {
    "长沙": ("枫林三路", "潇湘南路", "韶山南路", "芙蓉中路", "湘府西路", "麓谷大道", "万家丽路"),
    "武汉": ("珞喻路", "光谷大道", "解放大道", "民族大道", "沙湖路", "建设大道", "四新大道"),
    "杭州": ("文三路", "江南大道", "天目山路", "莫干山路", "良渚路", "丰潭路", "九堡大道"),
}

PICKUP_KINDS = ("便利店", "生鲜驿站", "快递驿站", "水果店", "物业服务中心")

# -- people --------------------------------------------------------------------------------------

# (surname, pinyin, relative frequency)
SURNAMES: tuple[tuple[str, str, int], ...] = (
    ("王", "wang", 72),
    ("李", "li", 72),
    ("张", "zhang", 68),
    ("刘", "liu", 55),
    ("陈", "chen", 48),
    ("杨", "yang", 35),
    ("黄", "huang", 25),
    ("赵", "zhao", 24),
    ("吴", "wu", 22),
    ("周", "zhou", 22),
    ("徐", "xu", 17),
    ("孙", "sun", 16),
    ("马", "ma", 15),
    ("朱", "zhu", 14),
    ("胡", "hu", 14),
    ("郭", "guo", 13),
    ("何", "he", 12),
    ("高", "gao", 11),
    ("林", "lin", 11),
    ("罗", "luo", 11),
    ("郑", "zheng", 10),
    ("梁", "liang", 10),
    ("谢", "xie", 9),
    ("宋", "song", 8),
    ("唐", "tang", 8),
    ("许", "xu", 8),
    ("韩", "han", 7),
    ("冯", "feng", 7),
    ("邓", "deng", 7),
    ("曹", "cao", 7),
    ("彭", "peng", 7),
    ("曾", "zeng", 6),
    ("肖", "xiao", 6),
    ("田", "tian", 6),
    ("董", "dong", 5),
    ("袁", "yuan", 5),
    ("潘", "pan", 5),
    ("蒋", "jiang", 5),
    ("蔡", "cai", 5),
    ("余", "yu", 5),
    ("杜", "du", 4),
    ("叶", "ye", 4),
    ("程", "cheng", 4),
    ("苏", "su", 4),
    ("魏", "wei", 4),
    ("吕", "lv", 4),
    ("丁", "ding", 4),
    ("任", "ren", 4),
    ("沈", "shen", 4),
    ("姚", "yao", 3),
    ("卢", "lu", 3),
    ("钟", "zhong", 3),
    ("汪", "wang", 3),
    ("戴", "dai", 3),
    ("方", "fang", 3),
    ("欧阳", "ouyang", 1),
)

# (character, pinyin) used to build given names of one or two characters.
GIVEN: tuple[tuple[str, str], ...] = (
    ("伟", "wei"),
    ("芳", "fang"),
    ("娜", "na"),
    ("敏", "min"),
    ("静", "jing"),
    ("丽", "li"),
    ("强", "qiang"),
    ("磊", "lei"),
    ("军", "jun"),
    ("洋", "yang"),
    ("勇", "yong"),
    ("艳", "yan"),
    ("杰", "jie"),
    ("娟", "juan"),
    ("涛", "tao"),
    ("明", "ming"),
    ("超", "chao"),
    ("秀", "xiu"),
    ("霞", "xia"),
    ("平", "ping"),
    ("刚", "gang"),
    ("英", "ying"),
    ("华", "hua"),
    ("玲", "ling"),
    ("红", "hong"),
    ("建", "jian"),
    ("文", "wen"),
    ("斌", "bin"),
    ("婷", "ting"),
    ("雪", "xue"),
    ("琳", "lin"),
    ("晨", "chen"),
    ("欣", "xin"),
    ("怡", "yi"),
    ("佳", "jia"),
    ("浩", "hao"),
    ("宇", "yu"),
    ("子", "zi"),
    ("梓", "zi"),
    ("涵", "han"),
    ("轩", "xuan"),
    ("思", "si"),
    ("雨", "yu"),
    ("嘉", "jia"),
    ("博", "bo"),
    ("慧", "hui"),
    ("颖", "ying"),
    ("倩", "qian"),
    ("鹏", "peng"),
    ("飞", "fei"),
    ("俊", "jun"),
    ("凯", "kai"),
    ("丹", "dan"),
    ("萍", "ping"),
    ("燕", "yan"),
    ("琴", "qin"),
    ("梅", "mei"),
    ("兰", "lan"),
    ("云", "yun"),
    ("志", "zhi"),
    ("海", "hai"),
    ("春", "chun"),
    ("秋", "qiu"),
    ("晓", "xiao"),
    ("欢", "huan"),
    ("亮", "liang"),
    ("诗", "shi"),
    ("悦", "yue"),
    ("然", "ran"),
    ("睿", "rui"),
    ("泽", "ze"),
)

ENGLISH_GIVEN: tuple[str, ...] = (
    "Emily",
    "David",
    "Lucas",
    "Grace",
    "Kevin",
    "Sophie",
    "Jason",
    "Linda",
    "Tony",
    "Anna",
    "Michael",
    "Cindy",
    "Eric",
    "Vivian",
    "Leo",
    "Helen",
)

# (mobile prefix, weight): China Mobile, Unicom and Telecom number blocks.
PHONE_PREFIXES: tuple[tuple[str, int], ...] = (
    ("138", 14),
    ("139", 12),
    ("137", 8),
    ("136", 7),
    ("135", 6),
    ("134", 3),
    ("150", 5),
    ("151", 5),
    ("152", 4),
    ("157", 3),
    ("158", 5),
    ("159", 5),
    ("182", 4),
    ("183", 3),
    ("187", 4),
    ("188", 4),
    ("130", 4),
    ("131", 3),
    ("132", 3),
    ("155", 3),
    ("156", 3),
    ("185", 3),
    ("186", 4),
    ("133", 3),
    ("153", 2),
    ("180", 3),
    ("181", 3),
    ("189", 4),
    ("177", 2),
    ("199", 3),
    ("198", 2),
    ("166", 2),
)

# (mail provider, weight). Demo addresses live under the reserved ``.example`` top-level domain
# (RFC 2606): they look like the real providers' but can never reach a real mailbox, whatever
# the SMTP settings of the server the demo runs on.
EMAIL_DOMAINS: tuple[tuple[str, int], ...] = (
    ("qq.example", 45),
    ("163.example", 22),
    ("126.example", 8),
    ("foxmail.example", 7),
    ("sina.example", 5),
    ("gmail.example", 5),
    ("outlook.example", 5),
    ("139.example", 3),
)

# -- catalog -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SkuSpec:
    spec: str
    price_cents: int  # everyday retail price
    cost_cents: int  # purchase cost: 55–80 % of the price
    portions: int = 1  # pieces an after-sales claim is prorated over (5 for a 5-jin box)


@dataclass(frozen=True)
class ProductSpec:
    name: str
    category: str
    unit: str
    skus: tuple[SkuSpec, ...]
    popularity: float = 1.0  # relative demand
    scarce: bool = False  # small, irregular supply: campaigns may stop at the warning level


def _p(
    name: str,
    category: str,
    unit: str,
    *skus: tuple[str, int, int, int],
    popularity: float = 1.0,
    scarce: bool = False,
) -> ProductSpec:
    return ProductSpec(name, category, unit, tuple(SkuSpec(*s) for s in skus), popularity, scarce)


PRODUCTS: tuple[ProductSpec, ...] = (
    # fruit (水果)
    _p(
        "赣南脐橙",
        "fruit",
        "箱",
        ("5斤装 单果75-80mm", 2990, 1990, 5),
        ("10斤装 单果80-85mm", 5490, 3690, 10),
        popularity=1.6,
    ),
    _p(
        "陕西洛川红富士苹果",
        "fruit",
        "箱",
        ("5斤装 果径80mm+", 2980, 1980, 5),
        ("10斤装 果径85mm+", 5480, 3780, 10),
        popularity=1.3,
    ),
    _p("海南麒麟西瓜", "fruit", "个", ("1个 约6-8斤", 2680, 1790, 1), popularity=1.2),
    _p("云南高原蓝莓", "fruit", "盒", ("125g*4盒 18mm+", 3990, 2790, 4), popularity=1.1),
    _p(
        "泰国金枕榴莲", "fruit", "个", ("1个 约4-5斤", 15900, 11900, 1), popularity=0.7, scarce=True
    ),
    _p(
        "智利车厘子 JJ级",
        "fruit",
        "盒",
        ("2斤装 28-30mm", 9900, 7500, 2),
        popularity=0.8,
        scarce=True,
    ),
    _p("广西武鸣沃柑", "fruit", "箱", ("5斤装", 2490, 1590, 5), popularity=1.2),
    _p("丹东99红颜草莓", "fruit", "盒", ("3斤装 单果20g+", 6990, 4990, 3), popularity=0.9),
    # vegetable (蔬菜)
    _p("山东章丘大葱", "vegetable", "份", ("2斤装", 690, 450, 2), popularity=1.3),
    _p("寿光沙瓤西红柿", "vegetable", "份", ("3斤装", 1290, 830, 3), popularity=1.4),
    _p("云南小土豆", "vegetable", "袋", ("5斤装", 1390, 890, 5), popularity=1.1),
    _p("本地上海青", "vegetable", "份", ("500g", 390, 250, 1), popularity=1.2),
    _p("山东旱黄瓜", "vegetable", "份", ("2斤装", 890, 590, 2), popularity=1.1),
    _p("东北黄心大白菜", "vegetable", "颗", ("1颗 约3斤", 590, 380, 1), popularity=1.0),
    _p("精品西兰花", "vegetable", "份", ("2颗装 约1斤", 990, 650, 2), popularity=0.9),
    _p("紫皮洋葱", "vegetable", "袋", ("3斤装", 690, 420, 3), popularity=0.8),
    _p("农家鲜香菇", "vegetable", "份", ("500g", 1190, 780, 1), popularity=0.8),
    # meat and eggs (肉禽蛋)
    _p(
        "农家散养土鸡蛋",
        "meat_egg",
        "盒",
        ("30枚装", 3290, 2390, 30),
        ("15枚装", 1790, 1290, 15),
        popularity=1.7,
    ),
    _p("黑猪五花肉", "meat_egg", "份", ("500g", 3290, 2390, 1), popularity=1.2),
    _p("精选猪肋排", "meat_egg", "份", ("1kg", 6990, 5190, 1), popularity=1.0),
    _p("内蒙古羔羊肉卷", "meat_egg", "份", ("500g*2盒", 6990, 5290, 2), popularity=0.8),
    _p("三黄鸡 整只", "meat_egg", "只", ("约1.2kg", 3990, 2890, 1), popularity=0.8),
    _p("谷饲牛腩块", "meat_egg", "份", ("1kg", 8990, 6790, 1), popularity=0.7),
    _p("新鲜鸡翅中", "meat_egg", "份", ("1kg", 5990, 4290, 1), popularity=0.9),
    _p("黑猪肉馅", "meat_egg", "份", ("500g", 2590, 1890, 1), popularity=0.8),
    # seafood (水产海鲜)
    _p("鲜活基围虾", "seafood", "份", ("500g", 4990, 3690, 1), popularity=1.0),
    _p("厄瓜多尔白虾", "seafood", "盒", ("1.65kg 40-50只/kg", 9900, 7290, 1), popularity=0.9),
    _p("舟山东海带鱼段", "seafood", "份", ("1kg", 5990, 4390, 1), popularity=0.8),
    _p(
        "阳澄湖大闸蟹",
        "seafood",
        "盒",
        ("公4两 母3两 4对", 19800, 14900, 8),
        popularity=0.5,
        scarce=True,
    ),
    _p("鲜活鲈鱼", "seafood", "条", ("1条 约1斤", 3290, 2390, 1), popularity=0.8),
    _p("鲜活花蛤", "seafood", "份", ("1kg", 1990, 1290, 1), popularity=0.7),
    _p("挪威三文鱼刺身", "seafood", "盒", ("200g", 5990, 4490, 1), popularity=0.6),
    # grain and oil (粮油调味)
    _p(
        "五常稻花香大米",
        "grain_oil",
        "袋",
        ("5kg", 6990, 4990, 1),
        ("10kg", 12990, 9590, 1),
        popularity=1.0,
    ),
    _p("金龙鱼 黄金比例调和油", "grain_oil", "桶", ("5L", 7990, 6190, 1), popularity=0.9),
    _p("鲁花 5S压榨一级花生油", "grain_oil", "桶", ("5L", 15990, 12390, 1), popularity=0.6),
    _p("福临门 东北大米", "grain_oil", "袋", ("10kg", 5990, 4490, 1), popularity=0.9),
    _p("香雪 高筋小麦粉", "grain_oil", "袋", ("5kg", 3290, 2390, 1), popularity=0.6),
    _p("千禾 零添加酱油", "grain_oil", "提", ("1L*2瓶", 3590, 2590, 1), popularity=0.8),
    _p("山西沁州黄小米", "grain_oil", "袋", ("2.5kg", 3990, 2790, 1), popularity=0.5),
    # dairy (乳品)
    _p(
        "蒙牛 纯牛奶",
        "dairy",
        "箱",
        ("250ml*24盒", 5990, 4490, 24),
        ("250ml*12盒", 3290, 2490, 12),
        popularity=1.4,
    ),
    _p("伊利 安慕希 希腊风味酸奶", "dairy", "箱", ("205g*12盒", 5990, 4590, 12), popularity=1.1),
    _p(
        "光明 优倍 鲜牛奶",
        "dairy",
        "瓶",
        ("950ml", 1690, 1190, 1),
        ("950ml*2瓶", 3190, 2290, 2),
        popularity=1.0,
    ),
    _p("君乐宝 简醇 0蔗糖酸奶", "dairy", "提", ("150g*10袋", 3990, 2890, 10), popularity=0.8),
    _p("伊利 金典 有机纯牛奶", "dairy", "箱", ("250ml*12盒", 6590, 4990, 12), popularity=0.8),
    _p("卡士 餐后一小时 酸奶", "dairy", "提", ("100g*6杯", 3690, 2690, 6), popularity=0.6),
    _p("三元 极致 全脂鲜牛奶", "dairy", "瓶", ("900ml", 1990, 1390, 1), popularity=0.6),
    # snacks (休闲零食)
    _p("三只松鼠 每日坚果", "snack", "盒", ("750g/30包", 9990, 6990, 30), popularity=0.9),
    _p("良品铺子 高蛋白肉脯", "snack", "袋", ("200g", 2990, 1990, 1), popularity=0.7),
    _p("卫龙 大面筋辣条", "snack", "提", ("106g*10包", 2990, 1890, 10), popularity=0.8),
    _p("旺旺 零食大礼包", "snack", "箱", ("1.2kg", 6990, 4890, 1), popularity=0.6),
    _p("百草味 夏威夷果", "snack", "袋", ("500g", 4990, 3390, 1), popularity=0.6),
    _p("乐事 薯片组合装", "snack", "提", ("70g*6袋", 3290, 2290, 6), popularity=0.7),
    _p("好丽友 巧克力派", "snack", "盒", ("34g*12枚", 2390, 1650, 12), popularity=0.6),
    # daily goods (日用百货)
    _p(
        "维达 抽纸",
        "daily",
        "提",
        ("3层*10包", 2590, 1790, 10),
        ("3层*24包", 5590, 3990, 24),
        popularity=1.3,
    ),
    _p("蓝月亮 深层洁净洗衣液", "daily", "瓶", ("3kg", 5490, 3790, 1), popularity=0.9),
    _p("舒肤佳 纯白清香沐浴露", "daily", "瓶", ("1L", 4590, 3090, 1), popularity=0.6),
    _p("高露洁 全面防蛀牙膏", "daily", "盒", ("140g*3支", 2990, 1990, 3), popularity=0.7),
    _p("立白 大师香氛洗洁精", "daily", "提", ("1.5kg*2瓶", 2990, 1990, 2), popularity=0.7),
    _p("洁柔 Face 卷纸", "daily", "提", ("4层140g*27卷", 5990, 4190, 27), popularity=0.8),
    _p("妙洁 加厚垃圾袋", "daily", "包", ("45*50cm 150只", 1990, 1290, 1), popularity=0.6),
)

CATEGORY_ZH: dict[str, str] = {
    "fruit": "水果",
    "vegetable": "蔬菜",
    "meat_egg": "肉禽蛋",
    "seafood": "水产海鲜",
    "grain_oil": "粮油调味",
    "dairy": "乳品",
    "snack": "休闲零食",
    "daily": "日用百货",
}

CATEGORY_DESCRIPTION: dict[str, str] = {
    "fruit": "产地直发,次日达自提点;坏果按比例包赔。",
    "vegetable": "当日凌晨采摘,冷链配送到自提点。",
    "meat_egg": "冷鲜直供,检疫合格;破损包赔。",
    "seafood": "鲜活直发,死亡包赔。",
    "grain_oil": "品牌直供,正品保障。",
    "dairy": "冷链配送,临期不发。",
    "snack": "品牌授权,整箱发货。",
    "daily": "家庭常备,囤货更划算。",
}

# After-sales claims per settled order, by category (spoiled fruit, broken eggs, dead fish…).
AFTER_SALES_RATE: dict[str, float] = {
    "fruit": 0.045,
    "vegetable": 0.025,
    "meat_egg": 0.02,
    "seafood": 0.04,
    "grain_oil": 0.004,
    "dairy": 0.01,
    "snack": 0.004,
    "daily": 0.004,
}

AFTER_SALES_REASONS: dict[str, tuple[str, ...]] = {
    "fruit": ("spoiled", "spoiled", "bruised", "short_weight"),
    "vegetable": ("spoiled", "wilted", "short_weight"),
    "meat_egg": ("broken", "spoiled", "short_weight"),
    "seafood": ("dead_on_arrival", "spoiled", "short_weight"),
    "grain_oil": ("damaged_package",),
    "dairy": ("damaged_package", "near_expiry"),
    "snack": ("damaged_package",),
    "daily": ("damaged_package", "wrong_item"),
}

# -- campaigns -----------------------------------------------------------------------------------

CAMPAIGN_TEMPLATES: tuple[str, ...] = (
    "【今日拼】{product} {n}人团",
    "今日爆款 · {product}",
    "{product} 限时拼团",
    "产地直发 · {product}",
    "邻里拼 · {product} {n}人成团",
    "社区特惠 · {product}",
    "早市鲜货 · {product}",
    "{city}专享 · {product}",
)

THEME_TEMPLATES: tuple[str, ...] = (
    "周末囤货节 · {category}专场",
    "{category}狂欢拼团",
    "家庭必备 · {category}组合拼",
)

REFUND_POLICY = (
    "未成团自动全额原路退款;成团后按最终阶梯价结算,差价原路退回;"
    "生鲜坏损 48 小时内凭照片按比例退款。"
)

# Share of a day's orders placed in each hour, Asia/Shanghai (evening peak 19:00–23:00).
HOURLY_WEIGHTS: tuple[float, ...] = (
    0.9,
    0.4,
    0.15,
    0.05,
    0.05,
    0.1,
    0.6,
    1.8,
    2.6,
    2.2,
    2.0,
    2.6,  # 00–11
    3.0,
    2.4,
    1.6,
    1.5,
    1.7,
    2.0,
    3.2,
    5.6,
    7.2,
    7.6,
    6.4,
    3.4,  # 12–23
)

# Relative demand by weekday (Monday = 0): weekends a bit higher.
WEEKDAY_WEIGHTS: tuple[float, ...] = (0.92, 0.9, 0.95, 0.97, 1.05, 1.22, 1.2)
